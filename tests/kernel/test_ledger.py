"""The ledger: chain, signatures, checkpoints, tamper detection, concurrency, crashes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerkit import race, raw_sql
from ouroboros.kernel import IntegrityError, Runtime


def fill(rt: Runtime, n: int) -> None:
    for i in range(n):
        out = rt.propose_and_submit(type="routing", target=f"agents/a{i % 3}/routing",
                                    value={"w": i}, reasoning="tune", author="tuner")
        assert out.status == "applied"


def test_every_event_links_to_the_previous_and_verifies(rt: Runtime) -> None:
    fill(rt, 5)
    events = rt.log()
    for prev, ev in itertools.pairwise(events):
        assert ev.prev == prev.hash and ev.seq == prev.seq + 1
    report = rt.verify()
    assert report.events == 6 and report.head == events[-1].hash


def test_checkpoints_commit_merkle_roots(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", checkpoint_interval=4)
    fill(rt, 9)
    cps = rt.log(kind="Checkpoint")
    # a checkpoint at seq s commits to the s events before it
    assert [c.payload["tree_size"] for c in cps] == [c.seq for c in cps] == [4, 8, 12]
    assert rt.verify().checkpoints == len(cps)



def _tree_of_ledger(rt: Runtime) -> tuple[int, bytes, str]:
    from ouroboros.kernel.canonical import hash_bytes
    from ouroboros.kernel.merkle import merkle_root

    bodies = [s.body for s in rt.backend.read()]
    return len(bodies), merkle_root(bodies), hash_bytes(bodies[-1])


def test_head_tree_after_appends_is_the_tree_of_the_ledger(tmp_path: Path) -> None:
    """The append hands its Merkle tree and body hashes to the fold instead of hashing the
    events again: after one-event and many-event appends, checkpoints between them, and
    a second writer's events folded inside the append, each writer's head tree (which
    every later checkpoint is signed from) is exactly the tree of the stored events."""
    a = Runtime.init(tmp_path / "ws", checkpoint_interval=3)
    b = Runtime.open(tmp_path / "ws")
    for i in range(7):
        for rt in (a, b):  # each append first folds the other's newest events
            out = rt.propose_and_submit(type="routing", target=f"agents/x{i % 2}/routing",
                                        value={"w": i}, reasoning="tune", author="tuner")
            assert out.status == "applied"
        a.record_batch([("ProbeNoted", {"i": i}), ("ProbeNoted", {"i": -i}),
                        ("ProbeNoted", {"i": 2 * i})])  # crosses a checkpoint inside
    a.rollback(to=5)
    b.refresh()
    size, root, head = _tree_of_ledger(a)
    assert any(e.kind == "Checkpoint" for e in a.log())
    for rt in (a, b):
        assert (rt._state.merkle.size, rt._state.merkle.root(), rt._state.last_hash) == \
            (size, root, head)
        assert rt.checkpoint().size == size  # the published note is signed from that tree
    assert a.verify().events == size
    a.close()
    b.close()


def _tamper(home: Path, seq: int, column: str, pos: int) -> None:
    """Flip one bit of an event's body or signature, directly in the database."""
    data = bytearray(raw_sql(home, f"SELECT {column} FROM events WHERE seq=?", seq)[0][0])
    data[pos % len(data)] ^= 0x01
    raw_sql(home, f"UPDATE events SET {column}=? WHERE seq=?", bytes(data), seq)


@pytest.fixture(scope="module")
def ledger_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tpl") / "ws"
    rt = Runtime.init(home, checkpoint_interval=5)
    fill(rt, 8)
    rt.close()
    return home


@pytest.mark.backends("sqlite")  # copies the workspace's database file
@given(seq=st.integers(0, 9), column=st.sampled_from(["body", "sig"]), pos=st.integers(0, 10_000))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_single_byte_change_is_detected(ledger_template: Path, tmp_path: Path, seq: int,
                                              column: str, pos: int) -> None:
    import shutil

    home = tmp_path / f"t{seq}-{column}-{pos}"
    shutil.copytree(ledger_template, home)
    _tamper(home, seq, column, pos)
    rt = Runtime.__new__(Runtime)  # open without folding: the state may be unreadable now
    from ouroboros.kernel.ledger import verify_events
    from ouroboros.kernel.workspace import Workspace
    from ouroboros.storage.sqlite import SQLiteLedger

    ws = Workspace.load(home)
    backend = SQLiteLedger(ws.ledger_path)
    with pytest.raises(IntegrityError) as err:
        verify_events(backend.read(), pinned_genesis=ws.config["genesis"])
    assert err.value.seq == seq
    backend.close()
    del rt


def test_verify_cli_names_the_first_bad_event(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    fill(rt, 4)
    rt.close()
    _tamper(tmp_path / "ws", 2, "body", 40)
    proc = subprocess.run([sys.executable, "-m", "ouroboros", "verify", "--home",
                           str(tmp_path / "ws")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "event 2" in proc.stderr


def test_deleted_event_is_a_sequence_gap(rt: Runtime) -> None:
    fill(rt, 3)
    raw_sql(rt.home, "DELETE FROM events WHERE seq=2")
    with pytest.raises(IntegrityError, match="event 3: sequence gap") as err:
        rt.verify()
    assert err.value.seq == 3


def _append_many(home: str, n: int, who: str) -> None:
    rt = Runtime.open(home)
    for i in range(n):
        rt.propose_and_submit(type="routing", target=f"agents/{who}{i}/routing", value={"w": i},
                              reasoning="race", author=who)
    rt.close()


def test_two_processes_appending_never_fork_the_chain(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(home), 25, who)) for who in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rt = Runtime.open(home)
    report = rt.verify()
    assert report.events == 51
    assert len(rt.log(kind="PatchApplied")) == 50
    rt.close()


_KILL_WORKER = """
import sys
from ouroboros.kernel import Runtime
rt = Runtime.open(sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    rt.propose_and_submit(type="routing", target=f"agents/k{i % 7}/routing", value={"w": i},
                          reasoning="kill test " + "x" * (i % 50), author="killer")
    i += 1
    print(i, flush=True)
"""


def test_sigkill_during_submits_leaves_a_verifiable_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home, checkpoint_interval=16, snapshot_interval=8).close()
    script = tmp_path / "worker.py"
    script.write_text(_KILL_WORKER)
    seen = 0
    for round_ in range(12):
        proc = subprocess.Popen([sys.executable, str(script), str(home)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        # Some submits land in every round however loaded the machine (the kill then
        # comes at a varying point of a later one).
        for _ in range(3):
            assert proc.stdout.readline().strip()
        time.sleep(0.05 + 0.037 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        rt = Runtime.open(home)
        report = rt.verify()
        assert report.events >= seen
        seen = report.events
        replay = rt.replay()
        assert replay.consistent
        # every applied event is whole: its patch decodes and its recorded result replays
        assert all("envelope" in e.payload for e in rt.log(kind="PatchApplied"))
        rt.close()
    assert seen > 20


def test_parallel_verification_names_the_first_bad_event(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    items = [("BenchEvent", {"i": i}) for i in range(4600)]
    for i in range(0, len(items), 1000):
        rt.record_batch(items[i:i + 1000])
    assert rt.verify(workers=2).events == rt.backend.count()
    _tamper(rt.home, 4321, "sig", 7)
    _tamper(rt.home, 2500, "body", 30)
    with pytest.raises(IntegrityError) as err:
        rt.verify(workers=2)
    assert err.value.seq == 2500
    rt.close()


def _contend(home: str, n: int, who: str, start: Any) -> None:
    rt = Runtime.open(home)
    start.wait(60)
    for i in range(n):
        # the own-target success after each attempt resets the author's breaker
        rt.propose_and_submit(type="routing", target="agents/shared/routing",
                              value={"w": i, who: 1}, reasoning="race", author=who)
        rt.propose_and_submit(type="routing", target=f"agents/{who}/routing", value={"w": i},
                              reasoning="own", author=who)
    rt.close()


def test_writers_racing_on_one_target_never_lose_an_update(tmp_path: Path) -> None:
    """Decisions survive another writer's unrelated appends, but an append to the same
    target forces a fresh decision: every applied patch was made against the value the
    previous one left."""
    from ouroboros.kernel import ABSENT
    from ouroboros.kernel.state import patch_from_envelope

    home = tmp_path / "ws"
    Runtime.init(home).close()
    race(_contend, [(str(home), 20, who) for who in ("p", "q")], timeout=180)
    rt = Runtime.open(home)
    rt.verify()
    last = ABSENT
    applied = [e for e in rt.log(kind="PatchApplied") if e.payload["target"] == "agents/shared/routing"]
    for ev in applied:
        assert patch_from_envelope(ev.payload["envelope"])["base"] == last
        last = ev.payload["result"]
    stale = [e for e in rt.log(kind="PatchRejected") if "stale base" in e.payload["reason"]]
    assert len(applied) + len(stale) == 40
    assert len(rt.log(kind="PatchApplied")) == len(applied) + 40
    rt.close()


def test_a_moved_head_is_caught_up_inside_the_append(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer's unrelated events are folded in the append's own critical section
    and the decision goes on top without a second round of gates; events that touch the
    patch's target make it decide again (here: a stale base)."""
    from ouroboros.kernel.gates import SchemaGate

    home = tmp_path / "ws"
    Runtime.init(home).close()
    mine, other = Runtime.open(home), Runtime.open(home)
    decisions: list[str] = []
    real = SchemaGate.check

    def counting(self: SchemaGate, sub: Any) -> Any:
        decisions.append(sub.patch_hash)
        return real(self, sub)

    monkeypatch.setattr(SchemaGate, "check", counting)
    quiet = mine.sign(mine.propose("routing", "agents/a/routing", value={"w": 1},
                                   reasoning="r", author="me"), "runtime")
    other.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 2},
                             reasoning="r", author="other")
    decisions.clear()
    out = mine.submit(quiet)
    assert out.status == "applied" and decisions == [out.patch_hash]
    assert mine.state_hash() == other.state_hash() and mine.value("agents/b/routing") == {"w": 2}

    clash = mine.sign(mine.propose("routing", "agents/a/routing", value={"w": 3},
                                   reasoning="r", author="me"), "runtime")
    other.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 4},
                             reasoning="r", author="other")
    decisions.clear()
    out = mine.submit(clash)
    assert (out.status, out.stage) == ("rejected", "schema") and "stale base" in out.reason
    assert decisions == [out.patch_hash, out.patch_hash]  # decided, then decided again
    assert mine.value("agents/a/routing") == {"w": 4}
    mine.verify()
    mine.close()
    other.close()


def test_reads_stream_in_batches_while_the_ledger_grows(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``read`` fetches bounded batches (no fetchall), each its own query: appending between
    two batches on the same connection neither skips nor repeats an event."""
    from ouroboros.storage import sqlite as sqlite_backend
    from ouroboros.storage.postgres import ledger as postgres_backend

    monkeypatch.setattr(sqlite_backend, "_BATCH", 7)
    monkeypatch.setattr(postgres_backend, "_BATCH", 7)
    rt = Runtime.init(tmp_path / "ws")
    rt.record_batch([("Note", {"i": i}) for i in range(20)])
    seen = []
    for ev in rt.backend.read():
        seen.append(ev.seq)
        if ev.seq == 10:
            rt.record_batch([("Note", {"i": 100 + i}) for i in range(5)])
    assert seen == list(range(rt.backend.count()))
    assert [e.seq for e in rt.backend.read(3, 9)] == list(range(3, 9))
    rt.close()
