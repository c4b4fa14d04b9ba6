"""Class 3: snapshots are signed and checked; a history with a patch applied twice is not.

The attacker rewrites snapshot rows (adds a root key, drops an applied-index entry) or,
holding the runtime key, appends a second ``PatchApplied`` of a rolled-back patch. Each
is refused on open or caught by ``verify`` and ``replay``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgerkit import backend_of
from ouroboros.kernel import IntegrityError, Runtime
from ouroboros.kernel.canonical import canonical_bytes, hash_bytes
from ouroboros.kernel.ledger import make_event
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.verify import snapshot_statement

from .kernelkit import grant, ouro, routing, sql, submit


@pytest.fixture
def home(tmp_path: Path) -> Path:
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=4)
    grant(rt, "alice", ["prompt"])
    submit(rt, "alice", type="prompt", target="agents/a/prompt", value="hello")
    routing(rt, 6)
    rt.close()
    return tmp_path / "ws"


def _latest(home: Path) -> tuple[int, dict[str, object]]:
    seq, data = sql(home, "SELECT seq, data FROM snapshots ORDER BY seq DESC LIMIT 1")[0]
    return int(seq), json.loads(data)


def test_snapshots_are_signed_by_the_runtime_key(home: Path) -> None:
    rt = Runtime.open(home)
    snap = rt.backend.latest_snapshot()
    assert snap is not None and rt.snapshot_problems == {}
    from ouroboros.kernel.keys import verify_signature

    assert verify_signature(rt.signer.public_hex, snap.sig, snapshot_statement(snap.data))
    assert rt.verify().snapshots == len(rt.backend.snapshot_seqs()) >= 2
    rt.close()


def test_a_snapshot_that_adds_a_root_key_is_not_served(home: Path) -> None:
    seq, state = _latest(home)
    policy = state["values"]["kernel/trust"]  # type: ignore[index]
    rt = Runtime.open(home)
    mallory = rt.keyring.new("mallory")
    rt.close()
    policy["keys"][mallory.key_id] = {"name": "mallory", "public": mallory.public_hex}
    policy["root"]["keys"].append(mallory.key_id)
    sql(home, "UPDATE snapshots SET data = ? WHERE seq = ?", canonical_bytes(state), seq)
    rt = Runtime.open(home)
    assert mallory.key_id not in rt.value("kernel/trust")["root"]["keys"]  # rebuilt
    assert "signature does not verify" in rt.snapshot_problems[seq]
    out = rt.submit(rt.sign(rt.propose("prompt", "agents/a/prompt", value="pwned",
                                       reasoning="r", author="mallory"), "mallory"))
    assert out.status == "rejected" and "untrusted key" in out.reason
    with pytest.raises(IntegrityError, match=f"snapshot at seq {seq}"):
        rt.verify()
    rt.close()
    r = ouro("state", "kernel/trust", "--json", home=home)
    assert mallory.key_id not in json.loads(r.stdout)["root"]["keys"]
    assert ouro("verify", home=home).returncode == 1


def test_a_patch_index_that_forgets_an_applied_patch_cannot_reopen_it(home: Path) -> None:
    """The applied index lives in the database, unsigned (issue 17 keeps it out of the
    snapshots): drop a rolled-back patch's rows so its envelope could apply again. The
    signed state remembers what each target's last change rolled back, and ``verify``
    names the tampered index."""
    rt = Runtime.open(home)
    envelope = rt.sign(rt.propose("prompt", "agents/a/prompt", value="v2", reasoning="r",
                                  author="alice"), "alice")
    applied = rt.submit(envelope)
    assert applied.seq is not None
    rt.rollback(patch=applied.patch_hash)
    routing(rt, 5, start=100)  # a snapshot after the rollback
    rt.close()
    gone = sql(home, "DELETE FROM patch_log WHERE hash = ? RETURNING kind",
               bytes.fromhex(applied.patch_hash[7:]))
    assert len(gone) == 2  # its APPLIED and UNDONE rows
    rt = Runtime.open(home)
    out = rt.submit(envelope)
    assert out.status == "rejected" and "was rolled back by the last change" in out.reason
    assert "the patch index has no entry for it" in out.reason
    assert rt.value("agents/a/prompt") == "hello"
    with pytest.raises(IntegrityError, match="the patch index differs"):
        rt.verify()
    rt.close()


def test_snapshots_hold_the_live_state_not_the_history(tmp_path: Path) -> None:
    """Issue 17: the applied index is not in the snapshots, which stay the same size however
    many patches were applied; old snapshots are pruned."""
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=50)
    rt.workspace.config["snapshot_keep_every"] = 200
    rt.snapshot_keep_every = 200
    sizes = []
    for rounds in range(4):
        routing(rt, 100, start=rounds * 100)
        snap = rt.backend.latest_snapshot()
        assert snap is not None
        sizes.append(len(snap.data))
    assert max(sizes) - min(sizes) < 200  # only the Merkle stack and counters move
    seqs = rt.backend.snapshot_seqs()
    assert len(seqs) <= 3 + rt.backend.count() // 200 + 1
    assert rt.verify().snapshots == len(seqs)
    rt.close()


def test_a_resigned_snapshot_that_disagrees_with_the_replay_fails_verify(home: Path) -> None:
    """The runtime key itself signs a wrong snapshot (a bug or a misuse): verify replays
    the ledger and compares every snapshot byte for byte."""
    rt = Runtime.open(home)
    seq, state = _latest(home)
    state["values"]["agents/a/prompt"] = "a value no patch ever set"  # type: ignore[index]
    data = canonical_bytes(state)
    sql(home, "UPDATE snapshots SET data = ?, sig = ? WHERE seq = ?", data,
        rt.signer.sign(snapshot_statement(data)), seq)
    rt.close()
    rt = Runtime.open(home)
    assert rt.value("agents/a/prompt") == "a value no patch ever set"  # served: it is signed
    with pytest.raises(IntegrityError, match=f"snapshot at seq {seq} differs from the state"):
        rt.verify()
    rt.close()


def test_a_snapshot_moved_to_another_seq_is_not_served(home: Path) -> None:
    seq, _ = _latest(home)
    data, sig = sql(home, "SELECT data, sig FROM snapshots WHERE seq = ?", seq)[0]
    sql(home, "DELETE FROM snapshots")
    sql(home, "INSERT INTO snapshots (seq, data, sig) VALUES (?, ?, ?)", seq + 1, data, sig)
    rt = Runtime.open(home)
    assert "does not match the event stored there" in rt.snapshot_problems[seq + 1]
    assert rt.state_hash() == rt.replay().state_hash
    rt.close()


def _forge_reapply(home: Path) -> int:
    """With the runtime key: append a second PatchApplied of an applied patch."""
    rt = Runtime.open(home)
    first = rt.log(kind="PatchApplied")[-1]
    signer, last = rt.signer, rt.log()[-1]
    ledger_id = rt.ledger_id
    rt.close()
    backend = backend_of(home)
    payload = dict(first.payload)
    ev = make_event(last.seq + 1, last.hash, "PatchApplied", payload, last.time, signer)
    backend.append(lambda head: [ev])
    from ouroboros.kernel.anchors import sign_checkpoint
    from ouroboros.kernel.merkle import merkle_root

    bodies = [e.body for e in backend.read()]
    backend.put_checkpoint(sign_checkpoint(ledger_id, len(bodies), merkle_root(bodies),
                                           hash_bytes(ev.body), signer))
    backend.close()
    return last.seq + 1


def test_a_patch_applied_twice_is_rejected_by_replay_and_verify(home: Path) -> None:
    seq = _forge_reapply(home)
    for verb in ("verify", "replay"):  # (opening folds only the tail, trusting signed events)
        r = ouro(verb, home=home)
        assert r.returncode == 1, (verb, r.stdout)
        assert f"event {seq}" in r.stderr and "applied a second time" in r.stderr


def test_fold_rejects_reapply_unless_a_rollback_undid_it() -> None:
    """A replay's rule matches the gate's: a second PatchApplied is only valid after a
    PatchApplied whose rollback_of names the first."""
    from ouroboros.kernel.state import FoldError, fold_event

    state = KernelState()  # a replay's state: it builds its own index as it goes
    state.values["t"] = 1
    a, r = "sha256:" + "a" * 64, "sha256:" + "b" * 64

    def applied(seq: int, patch_hash: str, **extra: str) -> None:
        payload = {"patch_hash": patch_hash, "target": "t", "result": "x",
                   "envelope": {}, **extra}
        fold_event(state, seq, "PatchApplied", payload, "", b"%d" % seq, known_value=seq)

    applied(1, a)
    with pytest.raises(FoldError, match="applied a second time"):
        applied(2, a)
    applied(2, r, rollback_of=a)
    applied(3, a)  # undone in between: a rollback may redo it
    with pytest.raises(FoldError):
        applied(4, a)
