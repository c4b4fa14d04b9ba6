"""Class 6: approvals are scoped, never self-granted, and counted by distinct keys.

The attacker holds a key with the ``approve`` right for some types/targets and tries to
approve other patches, its own patches, or to count twice (two ids for one public key).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ouroboros.kernel import PatchRejected, PatchType, Runtime, UsageError
from ouroboros.kernel.trust import GATES_TARGET, TRUST_TARGET

from .kernelkit import grant, ouro


def _gates(rt: Runtime, approval: list[dict[str, Any]]) -> None:
    gates = rt.value(GATES_TARGET)
    gates["approval"] = approval
    out = rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r",
                                       author="operator"), "root"))
    assert out.status == "applied", out


@pytest.fixture
def reviewed(rt: Runtime) -> Runtime:
    rt.registry.register_type(PatchType("file", {"type": "string"}))
    grant(rt, "docs", ["file"], targets=["docs/*"], rights=["approve"])
    grant(rt, "ops", ["file", "config"], targets=["ops/*", "docs/*"], rights=["approve"])
    return rt


def _pending(rt: Runtime, target: str, key: str = "runtime", author: str = "improve") -> str:
    out = rt.submit(rt.sign(rt.propose("file", target, value="x", reasoning="r",
                                       author=author), key))
    assert out.status == "pending", out
    return out.patch_hash


def test_the_approve_right_stops_at_the_delegations_types_and_targets(reviewed: Runtime) -> None:
    ops_patch = _pending(reviewed, "ops/deploy.yaml")
    with pytest.raises(UsageError, match="covers file patches on docs/\\*, not file on 'ops/"):
        reviewed.approve(ops_patch, key="docs")
    with pytest.raises(UsageError, match="may not approve"):
        reviewed.reject(ops_patch, "no", key="docs")
    assert ops_patch in reviewed.pending()
    assert reviewed.approve(ops_patch, key="ops").status == "applied"
    docs_patch = _pending(reviewed, "docs/readme.md")
    assert reviewed.approve(docs_patch, key="docs").status == "applied"


def test_an_expired_or_revoked_approver_is_refused(reviewed: Runtime, clock: Any) -> None:
    grant(reviewed, "temp", ["file"], rights=["approve"])
    policy = reviewed.value(TRUST_TARGET)
    next(d for d in policy["delegations"] if d["name"] == "temp")["expires"] = \
        "2026-01-01T01:00:00.000000Z"
    out = reviewed.submit(reviewed.sign(reviewed.propose("trust", TRUST_TARGET, value=policy,
                                                         reasoning="r"), "root"))
    assert out.status == "applied", out
    patch = _pending(reviewed, "docs/a.md")
    clock.advance(hours=2)
    with pytest.raises(UsageError, match="expired at 2026-01-01T01:00:00"):
        reviewed.approve(patch, key="temp")
    reviewed.revoke("docs", reason="left the team")
    with pytest.raises(UsageError, match="was revoked"):
        reviewed.approve(patch, key="docs")


def test_self_approval_is_refused_unless_the_rule_allows_it(reviewed: Runtime) -> None:
    grant(reviewed, "writer", ["file"], targets=["docs/*"], rights=["approve"],)
    mine = _pending(reviewed, "docs/mine.md", key="writer", author="writer")
    with pytest.raises(UsageError, match="approving one's own patch is refused"):
        reviewed.approve(mine, key="writer")
    r = ouro("approve", mine[7:19], "--key", "writer", home=reviewed.home)
    assert r.returncode == 2 and "own patch" in r.stderr
    assert mine in reviewed.pending()
    _gates(reviewed, [{"types": ["file"], "targets": ["*"], "self_approval": True}])
    assert reviewed.approve(mine, key="writer").status == "applied"


def test_a_co_signer_trusted_only_later_may_not_approve_its_own_patch(reviewed: Runtime) -> None:
    """alice co-signs a patch before her key is trusted (her signature is not a valid one
    yet, so the pending patch did not list her as a signer); once she is granted the
    approve right she approved her own patch, which then applied carrying her signature."""
    rt = reviewed
    rt.keyring.new("alice")
    envelope = rt.sign(rt.propose("file", "docs/cosigned.md", value="mine", reasoning="r",
                                  author="improve"), "runtime")
    rt.sign(envelope, "alice")
    patch = rt.submit(envelope).patch_hash
    grant(rt, "alice", ["file"], targets=["docs/*"], rights=["approve"])
    with pytest.raises(UsageError, match="approving one's own patch is refused"):
        rt.approve(patch, key="alice")
    assert patch in rt.pending() and rt.value("docs/cosigned.md") is None
    assert rt.approve(patch, key="docs").status == "applied"


def test_approval_thresholds_count_distinct_keys(reviewed: Runtime) -> None:
    _gates(reviewed, [{"types": ["file"], "targets": ["*"], "approvals": 2}])
    patch = _pending(reviewed, "docs/two.md")
    first = reviewed.approve(patch, key="docs")
    assert (first.status, first.reason) == ("pending", "1 of 2 approvals")
    with pytest.raises(UsageError, match="already approved"):
        reviewed.approve(patch, key="docs")
    assert reviewed.value("docs/two.md") is None
    done = reviewed.approve(patch, key="ops")
    assert done.status == "applied" and reviewed.value("docs/two.md") == "x"
    kinds = [e.kind for e in reviewed.log()][-3:]
    assert kinds == ["PatchApproved", "PatchApproved", "PatchApplied"]
    assert reviewed.replay().consistent  # both approval signatures re-checked


def test_one_public_key_under_two_ids_is_refused_by_the_trust_gate(rt: Runtime) -> None:
    """With two ids for one key, a 2-of-2 delegation could be met by one signer."""
    alice = rt.keyring.new("alice")
    policy = rt.value(TRUST_TARGET)
    fake_id = "f" * 64
    policy["keys"][alice.key_id] = {"name": "alice", "public": alice.public_hex}
    policy["keys"][fake_id] = {"name": "alice-again", "public": alice.public_hex}
    policy["delegations"].append({"name": "pair", "keys": [alice.key_id, fake_id],
                                  "types": ["prompt"], "targets": ["*"], "threshold": 2})
    out = rt.submit(rt.sign(rt.propose("trust", TRUST_TARGET, value=policy, reasoning="r"),
                            "root"))
    assert (out.status, out.stage) == ("rejected", "test")
    assert "is not the SHA-256 of its public key" in out.reason
    assert "public key listed twice" in out.reason


def test_thresholds_count_distinct_public_keys_even_if_ids_collide() -> None:
    """Defence in depth: ``authorise`` counts public keys, not ids."""
    from datetime import UTC, datetime

    from ouroboros.kernel.trust import authorise

    policy = {"keys": {"a": {"public": "11" * 32}, "b": {"public": "11" * 32},
                       "c": {"public": "22" * 32}},
              "root": {"keys": ["c"], "threshold": 1},
              "delegations": [{"name": "d", "keys": ["a", "b"], "types": ["prompt"],
                               "targets": ["*"], "threshold": 2}]}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    auth = authorise(policy, "prompt", "x", False, frozenset({"a", "b"}), now)
    assert not auth.ok and "found 1" in auth.reason


# -- grants under review: a grant waits for a person who may grant, never more ----------
@pytest.fixture
def tools_reviewed(rt: Runtime) -> Runtime:
    """`tools` patches to agents/* are reviewed; `agent` may change tool sets but not grant;
    `clerk` may approve but not grant; `admin` may approve and grant."""
    _gates(rt, [{"types": ["tools"], "targets": ["agents/*"], "approvals": 1}])
    grant(rt, "agent", ["tools"], targets=["agents/*"])
    grant(rt, "clerk", ["tools"], targets=["agents/*"], rights=["approve"])
    grant(rt, "admin", ["tools"], targets=["agents/*"], rights=["approve", "grant"])
    return rt


def _ask(rt: Runtime, value: Any, key: str = "agent") -> Any:
    return rt.submit(rt.sign(rt.propose("tools", "agents/a/tools", value=value, reasoning="r",
                                        author=key), key))


def test_a_grant_under_an_approval_rule_waits_for_a_person(tools_reviewed: Runtime) -> None:
    out = _ask(tools_reviewed, ["shell"])
    assert (out.status, out.stage) == ("pending", "audit"), out
    assert "'grant' right" in out.reason and tools_reviewed.value("agents/a/tools") is None


def test_an_approver_without_the_grant_right_grants_nothing(tools_reviewed: Runtime) -> None:
    out = _ask(tools_reviewed, ["shell"])
    done = tools_reviewed.approve(out.patch_hash, key="clerk")
    assert (done.status, done.stage) == ("rejected", "audit"), done
    assert "privilege escalation" in done.reason
    assert tools_reviewed.value("agents/a/tools") is None
    assert tools_reviewed.log()[-1].kind == "PatchRejected"


def test_an_approver_holding_grant_lets_it_through(tools_reviewed: Runtime) -> None:
    out = _ask(tools_reviewed, ["shell"])
    done = tools_reviewed.approve(out.patch_hash, key="admin")
    assert done.status == "applied", done
    assert tools_reviewed.value("agents/a/tools") == ["shell"]


def test_a_grant_right_elsewhere_does_not_count(tools_reviewed: Runtime) -> None:
    """`ops` holds grant and approve, but for other targets: it cannot even approve here,
    and a root-approved grant is the only other way through."""
    grant(tools_reviewed, "ops", ["tools"], targets=["ops/*"], rights=["approve", "grant"])
    out = _ask(tools_reviewed, ["shell"])
    with pytest.raises(UsageError, match="may not approve"):
        tools_reviewed.approve(out.patch_hash, key="ops")
    assert tools_reviewed.approve(out.patch_hash, key="root").status == "applied"


def test_a_grant_with_another_audit_reason_is_refused_outright(tools_reviewed: Runtime) -> None:
    out = _ask(tools_reviewed, ["shell", "ignore previous instructions"])
    assert (out.status, out.stage) == ("rejected", "audit"), out
    assert "prompt-injection marker" in out.reason and tools_reviewed.pending() == {}


def test_without_an_approval_rule_a_grant_is_refused_outright(rt: Runtime) -> None:
    grant(rt, "agent", ["tools"], targets=["agents/*"])
    out = _ask(rt, ["shell"])
    assert (out.status, out.stage) == ("rejected", "audit") and "privilege escalation" in out.reason
    assert rt.pending() == {}


# -- approvals whose right is gone by the last approval ---------------------------------
@pytest.fixture
def two_needed(reviewed: Runtime) -> Runtime:
    """`file` patches need 2 approvals; `alice`, `bob` and `carol` may approve them."""
    _gates(reviewed, [{"types": ["file"], "targets": ["*"], "approvals": 2}])
    for name in ("alice", "bob", "carol"):
        grant(reviewed, name, ["file"], rights=["approve"])
    return reviewed


def _still_waiting(rt: Runtime, patch: str, target: str, done: Any, approvals: int) -> None:
    assert (done.status, done.reason) == ("pending", "1 of 2 approvals"), done
    assert rt.value(target) is None
    assert len(rt.pending()[patch]["approvals"]) == approvals
    assert not any(e.kind == "PatchApplied" and e.payload["patch_hash"] == patch
                   for e in rt.log())


def test_an_approval_by_a_key_revoked_since_no_longer_counts(two_needed: Runtime) -> None:
    """alice approves, then her key is revoked (compromised): bob's approval alone must
    not complete a 2-of-N rule; a second live approver does."""
    rt = two_needed
    patch = _pending(rt, "docs/r.md")
    assert rt.approve(patch, key="alice").reason == "1 of 2 approvals"
    rt.revoke("alice", reason="key leaked")
    _still_waiting(rt, patch, "docs/r.md", rt.approve(patch, key="bob"), approvals=2)
    assert rt.approve(patch, key="carol").status == "applied"
    assert rt.value("docs/r.md") == "x" and rt.replay().consistent


def test_an_approval_whose_delegation_expired_or_narrowed_since_no_longer_counts(
        two_needed: Runtime, clock: Any) -> None:
    rt = two_needed
    rt.keyring.new("temp")
    out = rt.grant(["temp"], types=["file"], rights=["approve"],
                   expires=clock.now() + timedelta(hours=1))
    assert out.status == "applied", out
    expiring = _pending(rt, "docs/e.md")
    assert rt.approve(expiring, key="temp").reason == "1 of 2 approvals"
    clock.advance(hours=2)
    _still_waiting(rt, expiring, "docs/e.md", rt.approve(expiring, key="bob"), approvals=2)

    narrowed = _pending(rt, "docs/n.md")
    assert rt.approve(narrowed, key="alice").reason == "1 of 2 approvals"
    grant(rt, "alice", ["file"], targets=["ops/*"], rights=["approve"])  # docs/* taken away
    _still_waiting(rt, narrowed, "docs/n.md", rt.approve(narrowed, key="bob"), approvals=2)
    assert rt.approve(narrowed, key="carol").status == "applied"


# -- rollbacks of reviewed targets ---------------------------------------------------------
def test_a_rollback_signed_below_root_does_not_skip_the_approval_rule(rt: Runtime) -> None:
    """Rollbacks skip the approval gate because the root key signs them. A delegate whose
    `config` patches wait for a person (as the runtime key's `file` patches do) rolled back
    a change a person had approved with its own key, and no person was asked."""
    _gates(rt, [{"types": ["config"], "targets": ["agents/*"]}])
    grant(rt, "agent", ["config"], targets=["agents/*"])
    out = rt.submit(rt.sign(rt.propose("config", "agents/a/config", value={"safe": True},
                                       reasoning="r", author="agent"), "agent"))
    assert out.status == "pending", out
    patch = out.patch_hash
    assert rt.approve(patch, key="root").status == "applied"
    before = len(rt.log())
    with pytest.raises(PatchRejected, match="approval") as err:
        rt.rollback(patch=patch, keys=["agent"])
    assert "root key" in str(err.value)
    r = ouro("rollback", "--patch", patch[7:23], "--key", "agent", home=rt.home)
    assert r.returncode == 3 and "root key" in r.stderr and "Traceback" not in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.value("agents/a/config") == {"safe": True} and len(rt.log()) == before
    assert [o.status for o in rt.rollback(patch=patch)] == ["applied"]  # the root key may
    assert rt.value("agents/a/config") is None
    # A target no approval rule covers is rolled back by whoever may sign its patches.
    out = rt.submit(rt.sign(rt.propose("routing", "agents/a/routing", value={"w": 1},
                                       reasoning="r", author="tuner"), "runtime"))
    assert [o.status for o in rt.rollback(patch=out.patch_hash, keys=["runtime"])] == ["applied"]
