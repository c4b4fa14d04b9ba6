"""Appends in one round trip (the schema's ``append_events``) and checkpoints written after
the commit: a stale writer is refused and catches up, the function cannot be talked into a
fork, and the local checkpoint never runs ahead of the ledger nor moves back, whatever
order writers publish in and wherever they are killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledgerkit import raw_sql
from ouroboros.kernel import Runtime
from ouroboros.kernel.anchors import Witness, sign_checkpoint
from ouroboros.kernel.dsse import new_envelope
from ouroboros.kernel.note import Checkpoint
from ouroboros.kernel.submission import remember
from ouroboros.storage.files import rewrite_unless_newer, tree_size
from ouroboros.storage.postgres import lock_key, parse

pytestmark = pytest.mark.backends("postgresql")


def submit(rt: Runtime, who: str, i: int) -> int:
    out = rt.propose_and_submit(type="routing", target=f"agents/{who}{i}/routing",
                                value={"w": i}, reasoning="t", author=who)
    assert out.status == "applied", out
    return out.seq


def test_a_writer_on_a_stale_head_is_refused_then_catches_up(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    a, b = Runtime.open(home), Runtime.open(home)
    envelope = new_envelope(remember(b.propose(type="routing", target="agents/b/routing",
                                               value={"w": 1}, reasoning="stale")))
    b.sign(envelope, "runtime")
    moved = [submit(a, "a", i) for i in range(3)]  # b has not seen these
    calls: list[int] = []
    real = b.backend._fast["append"].run  # type: ignore[attr-defined]

    def counted(params: tuple[bytes | None, ...]) -> list[tuple[bytes | None, ...]]:
        calls.append(int.from_bytes(params[1] or b"", "big"))
        return real(params)

    b.backend._fast["append"].run = counted  # type: ignore[attr-defined]
    out = b.submit(envelope)
    assert out.status == "applied" and out.seq == moved[-1] + 1
    assert calls == [moved[0], moved[-1] + 1]  # refused on the old head, stored on the new
    assert b.state("agents/a2/routing") == {"w": 2}  # a's events were folded on the way
    report = b.verify()
    seqs = [int(r[0]) for r in raw_sql(home, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(report.events))
    a.close()
    b.close()


def test_the_append_function_stores_nothing_on_a_wrong_head_or_bad_input(
        tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    submit(rt, "a", 0)
    events = list(rt.backend.read())
    name = rt.workspace.ledger_url
    assert name is not None
    key = lock_key(parse(name).ledger)
    n = len(events)
    forged = [b'{"forged": true}']
    # a stale head (an old seq): refused, told the head, handed the missed events
    rows = raw_sql(home, "SELECT * FROM append_events(?, ?, ?, ?, NULL, NULL, NULL)",
                   key, n - 1, forged, [b"s"])
    assert rows[0][:2] == (False, n) and [r[1] for r in rows[1:]] == [n - 1]
    assert bytes(rows[1][2]) == events[-1].body
    # a head from the future (a gap in the chain): refused the same way
    rows = raw_sql(home, "SELECT * FROM append_events(?, ?, ?, ?, NULL, NULL, NULL)",
                   key, n + 5, forged, [b"s"])
    assert rows == [(False, n, None, None)]
    # the right head, but a patch the caller took for unrecorded is in the index:
    # refused at the head it expected, nothing stored (an unknown hash does not refuse)
    applied = bytes.fromhex(str(rt.log(kind="PatchApplied")[-1].payload["patch_hash"])[7:])
    rows = raw_sql(home, "SELECT * FROM append_events(?, ?, ?, ?, NULL, NULL, NULL, "
                         "?::bytea[])", key, n, forged, [b"s"], [b"\0" * 32, applied])
    assert rows == [(False, n, None, None)]
    # bodies without signatures, or nothing at all: an error, nothing stored
    for bodies, sigs in ((forged * 2, [b"s"]), ([], [])):
        with pytest.raises(Exception, match="bodies and"):
            raw_sql(home, "SELECT * FROM append_events(?, ?, ?::bytea[], ?::bytea[], NULL, "
                          "NULL, NULL)", key, n, bodies, sigs)
    assert int(raw_sql(home, "SELECT count(*) FROM events")[0][0]) == n
    rt.close()
    rt = Runtime.open(home)  # the ledger is as it was
    assert rt.verify().events == n
    rt.close()


def test_an_older_checkpoint_never_replaces_a_newer_one(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    signer, ledger_id = rt.signer, rt.ledger_id
    notes = {size: sign_checkpoint(ledger_id, size, bytes(32), "sha256:" + "0" * 64, signer)
             for size in (5, 7, 12)}
    assert [tree_size(notes[s]) for s in (5, 7, 12)] == [5, 7, 12]
    path = str(tmp_path / "cp")
    assert rewrite_unless_newer(path, notes[7], durable=False)
    assert not rewrite_unless_newer(path, notes[5], durable=False)  # late, older: dropped
    assert Path(path).read_bytes() == notes[7]
    assert rewrite_unless_newer(path, notes[12], durable=False)
    assert Path(path).read_bytes() == notes[12]
    Path(path).write_bytes(b"garbage\nnot a size\n")  # unreadable: any checkpoint replaces it
    assert rewrite_unless_newer(path, notes[5], durable=False)
    # the local checkpoint and a witness keep the larger tree the same way
    witness = Witness(tmp_path / "w", ledger_id)
    witness.root.mkdir()
    for size in (12, 5):
        witness.publish(notes[size], durable=False)
        rt.backend.put_checkpoint(notes[size])
    assert witness.read() == notes[12] and rt.backend.get_checkpoint() == notes[12]
    rt.close()


_KILLED = """
import sys
from ouroboros.kernel import Runtime
rt = Runtime.open(sys.argv[1])
who = sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    rt.propose_and_submit(type="routing", target=f"agents/{who}{i % 7}/routing",
                          value={"w": i}, reasoning="race", author=who)
    i += 1
"""


def test_the_checkpoint_never_runs_ahead_or_back_under_writers_and_kills(
        tmp_path: Path) -> None:
    """Three writers race and are SIGKILLed at varied moments (between commit and
    checkpoint too) while this process watches: every checkpoint it reads verifies, is no
    larger than the ledger read just after it, and no smaller than the one before."""
    home = tmp_path / "ws"
    Runtime.init(home, checkpoint_interval=16, snapshot_interval=25).close()
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    watcher = Runtime.open(home)
    last, reads = 0, 0

    def watch(seconds: float) -> None:
        nonlocal last, reads
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            note = watcher.backend.get_checkpoint()
            assert note is not None
            size = Checkpoint.open(note, watcher.verifier).size  # never torn
            count = watcher.backend.count()  # read after the checkpoint
            assert size <= count, f"checkpoint of {size} events, ledger holds {count}"
            assert size >= last, f"checkpoint moved back from {last} to {size}"
            last, reads = size, reads + 1

    def start(who: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, str(script), str(home), who],
                             stdout=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        return p

    procs = [start(f"w{k}") for k in range(3)]
    for r in range(4):
        watch(0.3 + 0.1 * r)
        victim = procs.pop(0)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        procs.append(start(f"r{r}"))
    watch(0.3)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    watch(0.05)
    watcher.close()
    rt = Runtime.open(home)  # the anchors vouch for the ledger
    report = rt.verify()
    assert last > 20 and reads > 20
    assert last <= rt.checkpoint().size <= report.events
    submit(rt, "after", 0)  # the next append anchors the whole head again
    assert rt.checkpoint().size == rt.backend.count()
    rt.close()


def test_a_ledger_with_the_previous_append_function_is_upgraded_on_open(
        tmp_path: Path) -> None:
    """A ledger made before appends checked the patch index has the seven-argument
    function: opening it replaces that one (no overload left to call by mistake)."""
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    submit(rt, "a", 0)
    rt.close()
    raw_sql(home, "DROP FUNCTION append_events(bigint, bigint, bytea[], bytea[], bytea[], "
                  "smallint[], bigint[], bytea[])")
    raw_sql(home, "CREATE FUNCTION append_events(bigint, bigint, bytea[], bytea[], bytea[], "
                  "smallint[], bigint[]) RETURNS TABLE (stored boolean, at_seq bigint, "
                  "ev_body bytea, ev_sig bytea) LANGUAGE sql AS $$ SELECT false, 0::bigint, "
                  "NULL::bytea, NULL::bytea $$")
    rt = Runtime.open(home)
    try:
        submit(rt, "a", 1)
        envelope = rt.sign(rt.propose("routing", "agents/a1/routing", value={"w": 1},
                                      reasoning="t"), "runtime")
        assert rt.submit(envelope).status == "applied"
        assert rt.submit(envelope).reason.startswith("already applied")
        arities = raw_sql(home, "SELECT pronargs FROM pg_proc WHERE proname = "
                                "'append_events' AND pronamespace = current_schema()::regnamespace")
        assert arities == [(8,)]
        rt.verify()
    finally:
        rt.close()


def test_the_append_function_never_scans_the_patch_index(tmp_path: Path) -> None:
    """PL/pgSQL keeps the generic plan it made while the tables were tiny; a sequential
    scan of the patch index there made each append (under the lock) slower as history
    grew (``bench/kernel_postgres.py``'s growth figure: 590 -> 1,065 ms per 1,000 submits
    over 8,000). The function forbids scans (each of its statements has an index)."""
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    submit(rt, "a", 0)
    rt.close()
    [(config,)] = raw_sql(home, "SELECT proconfig FROM pg_proc WHERE proname = "
                                "'append_events' AND pronamespace = current_schema()::regnamespace")
    assert "enable_seqscan=off" in config
