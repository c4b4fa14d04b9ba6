"""Class 5: circuit breakers keyed to verified signing keys.

The attacker may submit anything: unsigned envelopes naming ``operator`` or ``rollback``,
envelopes signed by unknown keys, replays of a victim's old envelopes; a paused signer
tries to escape by renaming itself. None of it pauses anyone else, nor frees the paused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ouroboros.kernel import ManualClock, PatchType, Runtime, UsageError
from ouroboros.kernel.dsse import new_envelope

from .kernelkit import envelope_json, grant, ouro, submit


@pytest.fixture
def alice(rt: Runtime) -> Runtime:
    grant(rt, "alice", ["prompt", "config"])
    return rt


def _trip(rt: Runtime, key: str = "alice") -> None:
    for i in range(3):  # three different patches the audit gate refuses
        out = submit(rt, key, type="config", target="kernel/gates", value={"x": i})
        assert out.stage == "audit"


def test_unsigned_envelopes_naming_a_victim_count_against_no_one(rt: Runtime) -> None:
    for victim in ("operator", "rollback", "runtime"):
        for i in range(5):
            patch = rt.propose("config", "agents/a/config", value={"i": i}, reasoning="r",
                               author=victim)
            out = rt.submit(new_envelope(patch.canonical()))
            assert out.stage == "signature" and "no signature" in out.reason
            assert rt.log()[-1].payload["charged"] == []
    assert rt.breakers() == {}
    # The operator's root-signed patches and a rollback still go through.
    grant(rt, "bob", ["prompt"])
    assert rt.rollback(to=1)  # undoes bob's grant: root-signed, never paused


def test_unknown_and_forged_signatures_count_against_no_one(alice: Runtime) -> None:
    mallory = alice.keyring.new("mallory")
    for i in range(4):
        out = alice.submit(alice.sign(alice.propose("config", "kernel/gates", value={"i": i},
                                                    reasoning="r", author="alice"), mallory))
        assert "untrusted key" in out.reason
    envelope = alice.sign(alice.propose("prompt", "agents/a/prompt", value="x", reasoning="r",
                                        author="alice"), "alice")
    for i in range(4):  # a genuine alice signature plus a bogus one by a known key
        bogus = new_envelope(envelope.payload)
        bogus.signatures.update(envelope.signatures)
        from securesystemslib.signer._signature import Signature

        root_id = alice.keyring.public("root")[0]
        bogus.signatures[root_id] = Signature(keyid=root_id, sig=f"{i:02x}" * 64)
        assert alice.submit(bogus).stage == "signature"
    assert all(e["rejections"] == 0 for e in alice.breakers().values())
    assert alice.submit(envelope).status == "applied"


def test_a_paused_key_cannot_escape_by_renaming_itself(alice: Runtime) -> None:
    _trip(alice)
    for author in ("alice", "alice2", "operator", "rollback"):
        out = submit(alice, "alice", type="prompt", target="agents/a/prompt", value="hi",
                     author=author)
        assert (out.status, out.stage) == ("rejected", "breaker"), author
        assert "alice is paused until" in out.reason
    assert alice.value("agents/a/prompt") is None


def test_replaying_a_victims_old_rejected_envelopes_costs_them_nothing(alice: Runtime) -> None:
    old = [alice.sign(alice.propose("config", "kernel/gates", value={"old": i}, reasoning="r",
                                    author="alice"), "alice") for i in range(2)]
    for envelope in old:
        assert alice.submit(envelope).stage == "audit"  # alice's own mistakes: charged
    assert submit(alice, "alice", type="prompt", target="agents/a/prompt",
                  value="ok").status == "applied"  # her count resets
    for _ in range(3):  # the attacker replays both old rejections, again and again
        for envelope in old:
            assert alice.submit(envelope).stage == "audit"
    kid = alice.keyring.public("alice")[0]
    assert alice.breakers()[kid]["rejections"] == 0 and alice.paused_until("alice") is None


def test_resubmitting_an_applied_patch_is_a_no_op_and_counts_nothing(alice: Runtime,
                                                                      tmp_path: Path) -> None:
    env = tmp_path / "p.json"
    env.write_text(envelope_json(alice, "alice", type="prompt", target="agents/a/prompt",
                                 value="hello"))
    home = alice.home
    first = ouro("patch", "submit", str(env), "--json", home=home)
    assert first.returncode == 0
    before = len(alice.log())
    for _ in range(4):
        r = ouro("patch", "submit", str(env), "--json", home=home)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["status"] == "applied" and out["reason"].startswith("already applied at seq")
    assert len(alice.log()) == before
    assert all(e["rejections"] == 0 for e in alice.breakers().values())


def test_resume_needs_the_root_key_and_is_recorded(alice: Runtime, clock: ManualClock) -> None:
    _trip(alice)
    with pytest.raises(UsageError, match="needs 1 root signature"):
        alice.resume("alice", keys=["alice"])
    r = ouro("breakers", "resume", "alice", "--key", "runtime", home=alice.home)
    assert r.returncode == 2 and "root signature" in r.stderr
    r = ouro("breakers", "resume", "alice", "--json", home=alice.home)
    assert r.returncode == 0, r.stderr
    alice.refresh()
    event = alice.log(kind="BreakerResumed")[-1]
    assert set(event.payload["signatures"]) == {alice.keyring.public("root")[0]}
    assert submit(alice, "alice", type="prompt", target="agents/a/prompt",
                  value="back").status == "applied"
    assert alice.replay().consistent  # the replay re-checks the root signature
    with pytest.raises(UsageError, match="is not paused"):
        alice.resume("alice")


def test_runtime_authors_have_their_own_breakers(rt: Runtime) -> None:
    """The runtime key signs for every capability: one capability's rejections pause that
    capability, not its neighbours."""
    rt.registry.register_type(PatchType("bytecode", {"type": "object", "required": ["ok"]}))
    for i in range(3):
        out = rt.propose_and_submit(type="bytecode", target=f"flux/p{i}", value={"bad": i},
                                    reasoning="r", author="flux")
        assert out.stage == "test"
    assert rt.paused_until("flux") is not None and rt.paused_until("skills") is None
    ok = rt.propose_and_submit(type="bytecode", target="skills/x", value={"ok": 1},
                               reasoning="r", author="skills")
    assert ok.status == "applied"
    r = ouro("breakers", home=rt.home)
    assert "runtime/flux" in r.stdout


def test_stale_base_races_count_against_no_one(alice: Runtime) -> None:
    stale = [alice.propose("prompt", "agents/a/prompt", value=f"v{i}", reasoning="r",
                           author="alice") for i in range(4)]
    assert submit(alice, "alice", type="prompt", target="agents/a/prompt",
                  value="first").status == "applied"
    for patch in stale:
        out = alice.submit(alice.sign(patch, "alice"))
        assert "stale base" in out.reason
    assert alice.paused_until("alice") is None


def test_replayed_reviewed_envelopes_cannot_fill_a_victims_queue(rt: Runtime) -> None:
    """A victim's reviewed patches that a person rejected are in the (public) ledger. An
    attacker with no key submitted 50 of them again: each went back to the approval queue
    (nothing charged), the victim's queue was full (50), and the victim's own new patches
    were refused and charged until its breaker paused it. A patch charged once is not
    queued for review again; the victim's new patches go to review as before."""
    from ouroboros.kernel.dsse import envelope_to_dict
    from ouroboros.kernel.submission import MAX_PENDING_PER_SIGNER
    from ouroboros.kernel.trust import GATES_TARGET

    gates = rt.value(GATES_TARGET)
    gates["approval"] = [{"types": ["config"], "targets": ["agents/*"]}]
    assert rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r"),
                             "root")).status == "applied"
    grant(rt, "agent", ["config"], targets=["agents/*"])
    old = []
    for i in range(MAX_PENDING_PER_SIGNER):
        envelope = rt.sign(rt.propose("config", f"agents/p{i}/config", value={"i": i},
                                      reasoning="r", author="agent"), "agent")
        assert rt.submit(envelope).status == "pending"
        rt.reject(rt.log()[-1].payload["patch_hash"], "not now", key="root")
        if i % 2:  # an applied patch now and then resets the victim's count, as in life
            out = submit(rt, "agent", type="config", target=f"agents/ok{i}/config",
                         value={"i": i})
            assert rt.approve(out.patch_hash, key="root").status == "applied"
        old.append(json.dumps(envelope_to_dict(envelope)))
    attacker = Runtime.open(rt.home)
    try:
        for envelope in old:
            out = attacker.submit(envelope)
            assert (out.status, out.stage) == ("rejected", "approval"), out
            assert "rejected before" in out.reason
            assert attacker.log()[-1].payload["charged"] == []
    finally:
        attacker.close()
    assert rt.pending() == {}
    for i in range(3):
        out = submit(rt, "agent", type="config", target=f"agents/new{i}/config", value={"n": i})
        assert out.status == "pending", out
    assert all(b["paused_until"] is None for b in rt.breakers().values())
