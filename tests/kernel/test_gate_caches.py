"""The submit path's caches decide exactly what the uncached gates decide.

Each cache here is keyed on everything its answer depends on; these tests change one of
those inputs after a decision was cached and check the next decision follows it: a
narrowed or expiring delegation, a different set of signers, other audit facts, a value
whose grants and strings the single walk must report like the two walks it replaced.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gates import grant, submit

from ouroboros.kernel import ManualClock, Runtime
from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG, RegoAudit, audit_input
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.gates import AuditGate
from ouroboros.kernel.scan import Grant, _names, _pointer, is_grant_key, strings_and_grants
from ouroboros.kernel.trust import TRUST_TARGET, authorise, policy_view


def _retarget(rt: Runtime, name: str, targets: list[str]) -> None:
    policy = rt.value(TRUST_TARGET)
    next(d for d in policy["delegations"] if d["name"] == name)["targets"] = targets
    out = rt.submit(rt.sign(rt.propose("trust", TRUST_TARGET, value=policy, reasoning="narrow",
                                       author="operator"), "root"))
    assert out.status == "applied", out


def test_a_narrowed_delegation_binds_the_very_next_submit(rt: Runtime) -> None:
    grant(rt, "alice", ["prompt"], targets=["agents/*"])
    for i in range(3):  # decided once, then from the policy's cache
        assert submit(rt, type="prompt", target="agents/a/prompt", value=f"v{i}").status == \
            "applied"
    _retarget(rt, "alice", ["agents/b/*"])
    out = submit(rt, type="prompt", target="agents/a/prompt", value="after")
    assert out.status == "rejected" and out.stage == "signature"
    assert "no delegation lets alice sign prompt patches for 'agents/a/prompt'" in out.reason
    assert submit(rt, type="prompt", target="agents/b/prompt", value="ok").status == "applied"
    assert rt.value("agents/a/prompt") == "v2"


def test_an_expiring_delegation_is_judged_at_each_submit(tmp_path: Any) -> None:
    """One delegation with an expiry makes every decision under that policy time-bound:
    the expired one is refused at once, the timeless one beside it still passes."""
    clock = ManualClock()
    rt = Runtime.init(tmp_path / "ws", clock=clock)
    try:
        rt.keyring.new("alice")
        rt.keyring.new("bob")
        rt.grant(["alice"], types=["prompt"])
        rt.grant(["bob"], types=["prompt"], expires=clock.now().replace(hour=1))
        for who in ("alice", "bob", "alice", "bob"):
            assert submit(rt, who, type="prompt", target=f"agents/{who}/prompt",
                          value=f"{who} {clock.now()}").status == "applied"
            clock.advance(minutes=10)
        clock.advance(hours=1)
        late = submit(rt, "bob", type="prompt", target="agents/bob/prompt", value="late")
        assert late.status == "rejected" and "expired at 2026-01-01T01:00:00" in late.reason
        assert submit(rt, "alice", type="prompt", target="agents/alice/prompt",
                      value="still").status == "applied"
    finally:
        rt.close()


def test_a_decision_for_two_signers_is_not_reused_for_one(rt: Runtime) -> None:
    grant(rt, "alice", ["prompt"])  # makes the key; the pair below is what counts
    rt.keyring.new("bob")
    rt.grant(["alice", "bob"], types=["config"], threshold=2, name="pair")

    def signed_by(keys: list[str], value: int) -> Any:
        env = rt.sign(rt.propose(type="config", target="agents/a/config", value={"n": value},
                                 reasoning="r", author="alice"), keys[0])
        for k in keys[1:]:
            rt.sign(env, k)
        return rt.submit(env)

    assert signed_by(["alice", "bob"], 1).status == "applied"
    one = signed_by(["alice"], 2)
    assert one.status == "rejected" and "needs 2 signature(s) from distinct keys, found 1" \
        in one.reason
    assert signed_by(["bob", "alice"], 3).status == "applied"


def test_the_policy_view_is_per_object_and_agrees_with_authorise(rt: Runtime) -> None:
    grant(rt, "alice", ["prompt"], targets=["agents/*"])
    policy = rt.value(TRUST_TARGET)
    view = policy_view(policy)
    assert policy_view(policy) is view
    equal = rt.value(TRUST_TARGET)  # equal content, another object: its own view
    assert equal == policy and policy_view(equal) is not view
    kid = rt.keyring.public("alice")[0]
    now = rt.clock.now()
    for ptype, target, valid in [("prompt", "agents/a/prompt", frozenset({kid})),
                                 ("prompt", "tools/x", frozenset({kid})),
                                 ("config", "agents/a/config", frozenset({kid})),
                                 ("prompt", "agents/a/prompt", frozenset())]:
        for _ in range(2):  # the second answer comes from the cache
            assert view.authorise(ptype, target, False, valid, now) == \
                authorise(policy, ptype, target, False, valid, now)


JSON_KEYS = st.sampled_from(["tools", "Tools", "allowed_tools", "tооls", "permissions", "x",
                             "a/b", "m~n", "~1", "", "scopes", "note"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_KEYS, inner, max_size=4),
    max_leaves=20)


def _two_walks(value: Any, root_is_grant: bool) -> tuple[list[tuple[str, str]], set[Grant]]:
    """The strings and the grants as the audit gate found them before, in separate walks:
    the reference the single walk is held to."""
    texts: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            texts.append((where, node))
        elif isinstance(node, dict):
            children = []
            for k, v in node.items():
                at = f"{where}/{str(k).replace('~', '~0').replace('/', '~1')}"
                texts.append((f"{at}#key", str(k)))
                children.append((at, v))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend(reversed([(f"{where}/{i}", v) for i, v in enumerate(node)]))
    found: set[Grant] = {Grant("", n) for n in _names(value)} if root_is_grant else set()
    stack = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                at = f"{where}/{str(k).replace('~', '~0').replace('/', '~1')}"
                if is_grant_key(str(k)):
                    found |= {Grant(at, n) for n in _names(v)}
                stack.append((at, v))
        elif isinstance(node, list | tuple):
            stack.extend((f"{where}/{i}", v) for i, v in enumerate(node))
    return texts, found


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans())
def test_one_walk_finds_what_the_two_walks_find(value: Any, root_is_grant: bool) -> None:
    texts, found = strings_and_grants(value, root_is_grant=root_is_grant)
    want_texts, want_found = _two_walks(value, root_is_grant)
    assert texts == want_texts and found == want_found


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_pointers_escape_tilde_and_slash_as_rfc_6901_says() -> None:
    assert _pointer("", "a/b~c") == "/a~1b~0c"
    assert _pointer("/x", "~1") == "/x/~01"
    assert _pointer("/x", 3) == "/x/3"


def _facts(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(patch_type="prompt", target="agents/a/prompt", author="a",
                                reasoning="r", old=None, new="hello", root=False,
                                rights=frozenset())
    return audit_input(**{**base, **kw}, markers=DEFAULT_AUDIT_CONFIG["injection_markers"])


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_the_decision_cache_is_keyed_on_every_fact() -> None:
    audit = RegoAudit()
    config = dict(DEFAULT_AUDIT_CONFIG)
    assert audit.deny(config, _facts()) == []
    reordered = dict(reversed(list(_facts().items())))
    assert audit.deny(config, reordered) == [] and audit.evaluations == 1
    denied = audit.deny(config, _facts(target="kernel/gates"))
    assert denied and audit.evaluations == 2
    assert audit.deny(config, _facts(new="see https://evil.example.net/x")) != [] and \
        audit.evaluations == 3
    # Facts with no exact JSON form (an integer beyond 2**53) are refused as before the
    # cache key changed: the gate fails closed on them, nothing is evaluated or cached.
    huge = {**_facts(), "value_bytes": 2**60}
    with pytest.raises(InvalidPatch, match="exceeds safe integer domain"):
        audit.deny(config, huge)
    assert audit.evaluations == 3


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_a_decision_is_not_reused_under_another_audit_config() -> None:
    """Decisions are keyed by a digest of the config's canonical bytes: a config that
    differs in one entry is evaluated afresh, an equal one (a new object, as every fold
    of a gates patch makes) shares the decision."""
    audit = RegoAudit()
    config = dict(DEFAULT_AUDIT_CONFIG)
    facts = _facts(target="agents/a/prompt")
    assert audit.deny(config, facts) == [] and audit.evaluations == 1
    stricter = {**config, "forbidden_targets": [*config["forbidden_targets"], "agents/*"]}
    assert audit.deny(stricter, facts) != [] and audit.evaluations == 2
    assert audit.deny(config, facts) == [] and audit.evaluations == 2
    same = {k: (list(v) if isinstance(v, list) else v) for k, v in config.items()}
    assert audit.deny(same, facts) == [] and audit.evaluations == 2
    assert audit.deny(stricter, facts) != [] and audit.evaluations == 2


def _sized(value_bytes: int, reasoning_bytes: int = 1, **kw: Any) -> dict[str, Any]:
    return {**_facts(**kw), "value_bytes": value_bytes, "reasoning_bytes": reasoning_bytes}


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_sizes_within_the_bounds_share_one_decision() -> None:
    """The shipped policy reads the sizes only to refuse one over its bound, so every
    size within both bounds gets the same answer: evaluated once (a Rego evaluation costs
    more than a whole submit, and every edit of a prompt changes its size)."""
    audit = RegoAudit()
    config = dict(DEFAULT_AUDIT_CONFIG)
    bound, rbound = config["max_value_bytes"], config["max_reasoning_bytes"]
    for size, rsize in [(5, 1), (50, 7), (bound, rbound), (0, 0)]:
        assert audit.deny(config, _sized(size, rsize)) == []
    assert audit.evaluations == 1


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_a_size_over_its_bound_is_refused_after_sizes_within_it_were_cached() -> None:
    audit = RegoAudit()
    config = {**DEFAULT_AUDIT_CONFIG, "max_value_bytes": 100, "max_reasoning_bytes": 40}
    assert audit.deny(config, _sized(100, 40)) == []
    assert audit.deny(config, _sized(101, 40)) == [
        "value is 101 bytes, over the 100-byte bound"]
    # Over the bound the size is in the reason, so each size is its own decision.
    assert audit.deny(config, _sized(102, 40)) == [
        "value is 102 bytes, over the 100-byte bound"]
    assert audit.deny(config, _sized(7, 41)) == [
        "reasoning is 41 bytes, over the 40-byte bound"]
    assert audit.deny(config, _sized(7, 40)) == [] and audit.evaluations == 4
    # A stricter bound in another config: the size cached as within the old one is judged
    # against the new one.
    stricter = {**config, "max_value_bytes": 50}
    assert audit.deny(stricter, _sized(60, 40)) == ["value is 60 bytes, over the 50-byte bound"]


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_a_policy_that_reads_sizes_otherwise_decides_each_size() -> None:
    """Sharing decisions across sizes holds for the shipped policy only (pinned by its
    hash): a policy that reads the size in another rule is evaluated for every size."""
    from ouroboros.kernel.audit import policy_source

    edited = policy_source() + (
        '\ndeny contains msg if {\n\tinput.value_bytes > 60\n\tmsg := "over sixty"\n}\n')
    audit = RegoAudit(policy=edited)
    config = dict(DEFAULT_AUDIT_CONFIG)
    assert audit.deny(config, _sized(50)) == []
    assert audit.deny(config, _sized(70)) == ["over sixty"]
    assert audit.evaluations == 2


@pytest.mark.backends("sqlite")  # no ledger: one run is enough
def test_the_shipped_policy_reads_sizes_only_in_its_bound_rules() -> None:
    """The pin ``SIZE_BLIND_POLICY`` names the policy checked to read the sizes only in
    the two bound rules; an edit of the policy fails here until it is checked again."""
    import hashlib

    from ouroboros.kernel.audit import SIZE_BLIND_POLICY, policy_source

    source = policy_source()
    assert hashlib.sha256(source.encode()).hexdigest() == SIZE_BLIND_POLICY
    reads = [line.strip() for line in source.splitlines()
             if "_bytes" in line and not line.lstrip().startswith("#")]
    assert reads == [
        "input.value_bytes > data.config.max_value_bytes",
        'msg := sprintf("value is %d bytes, over the %d-byte bound", [input.value_bytes, '
        "data.config.max_value_bytes])",
        "input.reasoning_bytes > data.config.max_reasoning_bytes",
        'msg := sprintf("reasoning is %d bytes, over the %d-byte bound", '
        "[input.reasoning_bytes, data.config.max_reasoning_bytes])"]
    # no access by a computed key, no iteration over the input's fields
    assert not re.search(r"\binput\s*\[", source)
    assert not re.search(r"\bin\s+input\b(?!\.)", source)


def test_a_lowered_size_bound_refuses_the_next_submit(rt: Runtime) -> None:
    """Through the runtime: values within the bound applied (one decision for all their
    sizes), the bound lowered by a root gates patch, the next value over it refused."""
    from ouroboros.kernel.trust import GATES_TARGET

    audit = next(g for g in rt.gates if isinstance(g, AuditGate)).rego
    before = audit.evaluations
    for i in range(3):
        assert rt.propose_and_submit(type="prompt", target="agents/a/prompt",
                                     value="v" * (10 + i), reasoning="r",
                                     keys=("root",)).status == "applied"
    assert audit.evaluations == before + 1
    gates = rt.value(GATES_TARGET)
    gates["audit"]["max_value_bytes"] = 12
    assert rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r"),
                             "root")).status == "applied"
    out = rt.propose_and_submit(type="prompt", target="agents/a/prompt", value="v" * 11,
                                reasoning="r", keys=("root",))
    assert out.status == "rejected" and out.stage == "audit"
    assert out.reason == "value is 13 bytes, over the 12-byte bound"
    assert rt.value("agents/a/prompt") == "v" * 12
    assert rt.propose_and_submit(type="prompt", target="agents/a/prompt", value="v" * 10,
                                 reasoning="r", keys=("root",)).status == "applied"


def _register(rt: Runtime, schemas: dict[str, Any]) -> None:
    out = submit(rt, key="root", type="schemas", target="kernel/schemas", value=schemas)
    assert out.status == "applied", out


def test_a_registered_schema_is_compiled_once_while_it_stands(rt: Runtime) -> None:
    """The schema gate takes a registered schema as the state holds it: one compiled
    validator per registered value, not a copy (and a canonical encoding) per submit."""
    from ouroboros.kernel import types

    grant(rt, "alice", ["config"])
    _register(rt, {"agents/*/config": {"type": "object", "required": ["temperature"]}})
    types._by_identity.clear()
    for i in range(5):
        out = submit(rt, type="config", target=f"agents/a{i}/config", value={"temperature": i})
        assert out.status == "applied", out
    registered = rt.refresh().values["kernel/schemas"]["agents/*/config"]
    assert [s for s, _ in types._by_identity.values() if s == registered] == [registered]
    assert any(s is registered for s, _ in types._by_identity.values())


def test_a_changed_schema_binds_the_very_next_submit(rt: Runtime) -> None:
    """A schema replaced by a root patch is a new value: the validator compiled for the
    old one is never used for the next submit."""
    grant(rt, "alice", ["config"])
    _register(rt, {"agents/*/config": {"type": "object"}})
    assert submit(rt, type="config", target="agents/a/config",
                  value={"top_p": 1}).status == "applied"
    _register(rt, {"agents/*/config": {"type": "object", "required": ["temperature"]}})
    out = submit(rt, type="config", target="agents/a/config", value={"top_p": 2})
    assert (out.status, out.stage) == ("rejected", "test")
    assert '"temperature" is a required property' in out.reason
    assert rt.value("agents/a/config") == {"top_p": 1}  # nothing applied
    # ...and loosened again, the same value passes.
    _register(rt, {"agents/*/config": {"type": "object"}})
    assert submit(rt, type="config", target="agents/a/config",
                  value={"top_p": 2}).status == "applied"


def test_a_revoked_key_is_refused_at_the_very_next_submit(rt: Runtime) -> None:
    """The signature gate's decision for a key, cached per trust policy, is not reused
    once the key is revoked (a new policy value)."""
    grant(rt, "alice", ["config"])
    assert submit(rt, type="config", target="agents/a/config", value={"a": 1}).status == "applied"
    out, _ = rt.revoke("alice", reason="left")
    assert out.status == "applied", out
    out = submit(rt, type="config", target="agents/a/config", value={"a": 2})
    assert (out.status, out.stage) == ("rejected", "signature"), out
    assert rt.value("agents/a/config") == {"a": 1}
