"""Class 1: the newest events cannot be deleted (or rewritten) without trace.

The attacker can write every file of the workspace but holds no key and cannot write the
witness directories. Each test truncates, forks or forges and shows that opening the
workspace, `verify`, `replay` and `state` all fail naming what is missing, and that the
checkpoint format is the C2SP one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ouroboros.kernel import IntegrityError, ManualClock, Runtime
from ouroboros.kernel.merkle import merkle_root
from ouroboros.kernel.note import Checkpoint, Verifier, note_key_id, open_note, sign_note

from .kernelkit import count_events, ouro, routing, sql

DATA = Path(__file__).parent / "data"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    rt = Runtime.init(tmp_path / "ws")
    routing(rt, 6)
    rt.close()
    return tmp_path / "ws"


def test_every_append_leaves_a_checkpoint_of_the_exact_head(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", checkpoint_interval=4)
    for i in range(7):
        routing(rt, 1, start=i)
        cp = rt.checkpoint()
        events = rt.log()
        assert cp.size == len(events) == count_events(rt.home)
        assert cp.head == events[-1].hash
        bodies = [s.body for s in rt.backend.read()]
        assert cp.root == merkle_root(bodies)
    assert not (rt.home / "ledger.checkpoint.tmp").exists()  # rewritten in place
    rt.close()


@pytest.mark.parametrize("deleted", [1, 2, 5])
def test_deleting_the_newest_events_is_caught_everywhere(home: Path, deleted: int) -> None:
    total = count_events(home)
    sql(home, "DELETE FROM events WHERE seq >= ?", total - deleted)
    with pytest.raises(IntegrityError, match=f"ledger holds {total - deleted}") as err:
        Runtime.open(home)
    assert f"event(s) {total - deleted}..{total - 1} are missing" in str(err.value)
    for verb in ("verify", "replay", "state"):
        r = ouro(verb, home=home)
        assert r.returncode == 1 and "are missing" in r.stderr, (verb, r.stderr)
        assert "Traceback" not in r.stderr


def test_deleting_the_checkpoint_file_too_is_caught(home: Path) -> None:
    sql(home, "DELETE FROM events WHERE seq >= 5")
    (home / "ledger.checkpoint").unlink()
    r = ouro("verify", home=home)
    assert r.returncode == 1 and "local checkpoint is missing" in r.stderr


def test_a_forged_checkpoint_does_not_verify(home: Path) -> None:
    note = (home / "ledger.checkpoint").read_text()
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) - 3)  # claim a shorter log, then truncate to match
    (home / "ledger.checkpoint").write_text("\n".join(lines))
    sql(home, "DELETE FROM events WHERE seq >= ?", count_events(home) - 3)
    with pytest.raises(IntegrityError, match="does not verify: the signature by"):
        Runtime.open(home)


def test_rolling_back_to_an_old_checkpoint_is_caught_by_a_witness(home: Path,
                                                                 tmp_path: Path) -> None:
    """The workspace writer keeps an old (validly signed) checkpoint, truncates the ledger
    to it and puts it back: only a copy outside their reach can tell."""
    rt = Runtime.open(home)
    rt.add_witness(tmp_path / "witness")
    old_note = (home / "ledger.checkpoint").read_bytes()
    old_size = count_events(home)
    routing(rt, 3, start=10)
    rt.close()
    sql(home, "DELETE FROM events WHERE seq >= ?", old_size)
    (home / "ledger.checkpoint").write_bytes(old_note)
    r = ouro("verify", home=home)
    assert r.returncode == 1
    assert f"witness {tmp_path / 'witness'}" in r.stderr and "are missing" in r.stderr


def test_truncation_with_the_local_checkpoint_removed_is_caught_by_the_witness(
        home: Path, tmp_path: Path) -> None:
    rt = Runtime.open(home)
    rt.add_witness(tmp_path / "w")
    routing(rt, 3, start=10)
    rt.close()
    sql(home, "DELETE FROM events WHERE seq >= ?", count_events(home) - 2)
    (home / "ledger.checkpoint").unlink()
    (home / "ledger.checkpoint").write_bytes(b"")  # or any other junk in its place
    r = ouro("state", home=home)
    assert r.returncode == 1 and "does not verify" in r.stderr


def test_a_fork_signed_with_the_runtime_key_is_caught_by_the_witness(
        home: Path, tmp_path: Path) -> None:
    """Even the runtime key's holder cannot rewrite history a witness has seen: a new,
    validly signed branch of the same length disagrees with the witness's checkpoint."""
    from ledgerkit import backend_of
    from ouroboros.kernel.anchors import sign_checkpoint
    from ouroboros.kernel.canonical import hash_bytes
    from ouroboros.kernel.ledger import make_event

    rt = Runtime.open(home)
    witness = rt.add_witness(tmp_path / "w")
    routing(rt, 2, start=10)
    signer, events, ledger_id = rt.signer, rt.log(), rt.ledger_id
    rt.close()
    size = len(events)
    sql(home, "DELETE FROM events WHERE seq >= ?", size - 2)
    backend = backend_of(home)
    forged = []
    prev = events[-3].hash
    for seq in (size - 2, size - 1):
        ev = make_event(seq, prev, "Note", {"forged": seq}, events[-1].time, signer)
        forged.append(ev)
        prev = hash_bytes(ev.body)
    backend.append(lambda head: forged)
    bodies = [e.body for e in backend.read()]
    backend.put_checkpoint(sign_checkpoint(ledger_id, len(bodies), merkle_root(bodies), prev,
                                           signer))  # a perfectly signed local checkpoint
    backend.close()
    with pytest.raises(IntegrityError, match=f"witness {witness} commits to a different event"):
        Runtime.open(home)


def test_the_witness_refuses_to_be_overwritten_by_a_fork(home: Path, tmp_path: Path) -> None:
    """A runtime that meets a witness ahead of its ledger refuses to open (and so never
    publishes a checkpoint over the witness's evidence)."""
    rt = Runtime.open(home)
    witness = rt.add_witness(tmp_path / "w")
    routing(rt, 2, start=20)
    rt.close()
    evidence = next(witness.glob("*.checkpoint")).read_bytes()
    sql(home, "DELETE FROM events WHERE seq >= ?", count_events(home) - 2)
    shutil.copy(home / "ledger.checkpoint", tmp_path / "saved")
    with pytest.raises(IntegrityError):
        Runtime.open(home)
    assert next(witness.glob("*.checkpoint")).read_bytes() == evidence


def test_verify_checks_consistency_with_every_witness(home: Path, tmp_path: Path) -> None:
    rt = Runtime.open(home)
    w1, w2 = rt.add_witness(tmp_path / "w1"), rt.add_witness(tmp_path / "w2")
    routing(rt, 3, start=30)
    report = rt.verify()
    sources = dict(report.anchors)
    assert sources["the local checkpoint"] == count_events(home)
    assert sources[f"witness {w1}"] == sources[f"witness {w2}"] == count_events(home)
    rt.close()
    # A witness copy from another ledger (same key name, different log) is refused.
    other = Runtime.init(tmp_path / "other")
    routing(other, 1)
    cp = next(w1.glob("*.checkpoint"))
    cp.write_bytes(other.backend.get_checkpoint() or b"")
    other.close()
    r = ouro("verify", home=home)
    assert r.returncode == 1 and f"witness {w1}" in r.stderr


def test_an_unreachable_witness_does_not_stop_submits_but_fails_verify(
        home: Path, tmp_path: Path) -> None:
    rt = Runtime.open(home)
    witness = rt.add_witness(tmp_path / "w")
    shutil.rmtree(witness)
    witness.write_text("not a directory")  # the mount went away; something else is there
    routing(rt, 1, start=40)
    assert str(witness) in rt.witness_errors
    with pytest.raises(IntegrityError, match=f"witness {witness}"):
        rt.verify()
    rt.close()


def test_truncating_to_before_a_witness_was_added_needs_an_external_witness(
        home: Path, tmp_path: Path) -> None:
    """The limit of witnesses registered in the ledger: cut the ledger back to before the
    ``WitnessAdded`` event and put back the checkpoint of that moment, and the ledger no
    longer names its witness. An auditor who names the witness from their own records
    (``verify --witness``) still catches it."""
    old_note = (home / "ledger.checkpoint").read_bytes()
    old_size = count_events(home)
    rt = Runtime.open(home)
    witness = rt.add_witness(tmp_path / "w")
    routing(rt, 2, start=50)
    rt.close()
    sql(home, "DELETE FROM events WHERE seq >= ?", old_size)
    (home / "ledger.checkpoint").write_bytes(old_note)
    assert ouro("verify", home=home).returncode == 0  # the ledger alone looks whole
    r = ouro("verify", "--witness", str(witness), "--json", home=home)
    message = json.loads(r.stdout)["error"]["message"]  # --json: the error is on stdout
    assert r.returncode == 1 and f"witness {witness}" in message and "are missing" in message


def test_checkpoints_are_c2sp_signed_notes(home: Path) -> None:
    rt = Runtime.open(home)
    note = (home / "ledger.checkpoint").read_bytes()
    text, _, sig_line = note.decode().rpartition("\n\n")
    origin, size, root, head = text.split("\n")
    assert origin == rt.verifier.name and origin.startswith("ouroboros/ledger/")
    assert int(size) == count_events(home) and head.startswith("head sha256:")
    assert len(base64.b64decode(root)) == 32
    assert sig_line.startswith(f"\u2014 {origin} ")
    blob = base64.b64decode(sig_line.split(" ")[2])
    public = bytes.fromhex(rt.signer.public_hex)
    assert blob[:4] == hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    assert blob[:4] == note_key_id(origin, public) and len(blob) == 68
    assert Checkpoint.open(note, Verifier.parse(rt.verifier.vkey())).size == int(size)
    rt.close()


def test_signed_notes_match_the_go_reference_byte_for_byte() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ouroboros.kernel.keys import Signer

    v = json.loads((DATA / "go_note_vector.json").read_text())
    seed = base64.b64decode(v["skey"].split("+", 4)[4])[1:]
    signer = Signer.from_private("go", Ed25519PrivateKey.from_private_bytes(seed))
    verifier = Verifier.parse(v["vkey"])
    assert verifier.vkey() == v["vkey"]
    assert sign_note(v["text"].encode(), "PeterNeumann", signer).decode() == v["note"]
    assert open_note(v["note"].encode(), verifier) == v["text"].encode()


@pytest.mark.parametrize("mangle", [
    lambda n: n.replace(b"problem", b"problen", 1),  # the text
    lambda n: n[:-5] + b"AAAA\n",  # the signature
    lambda n: n.replace(b"PeterNeumann x", b"PeterNeumanx x"),  # another key's name: ignored
    lambda n: n.replace(b"\n\n", b"\n"),  # no signature block
    lambda n: n.replace(b"your", b"y\x07ur", 1),  # a control character
    lambda n: n + b"\xff",  # not UTF-8
])
def test_a_mangled_note_is_refused(mangle: object) -> None:
    from ouroboros.kernel.note import NoteError

    v = json.loads((DATA / "go_note_vector.json").read_text())
    assert callable(mangle)
    with pytest.raises(NoteError):
        open_note(mangle(v["note"].encode()), Verifier.parse(v["vkey"]))


def test_a_long_running_process_notices_the_ledger_shrinking(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", clock=ManualClock())
    routing(rt, 4)
    sql(rt.home, "DELETE FROM events WHERE seq >= 3")
    with pytest.raises(IntegrityError, match="the ledger shrank"):
        rt.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 1},
                              reasoning="r", author="t")
    rt.close()
