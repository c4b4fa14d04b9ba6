"""WAL checkpoints off the append path (`storage/wal.py`): the writer's commits never run
one, a thread does at SQLite's cadence, the WAL stays bounded (also when that thread is
stopped), closing waits for a running checkpoint, and a process SIGKILLed in the middle
of one loses no committed event."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.storage.sqlite import SQLiteLedger

pytestmark = pytest.mark.backends("sqlite")  # SQLite's WAL file

#: A payload of about 40 KB: seven 8 KiB WAL frames an event, so the WAL fills quickly.
_PAD = "x" * 40_000
_FRAME = 8192 + 24
#: The cadence and rewind point at a tenth of the shipped ones, reached in fewer appends.
_CADENCE, _REWIND = 100, 400


def _ledger(rt: Runtime) -> SQLiteLedger:
    backend = rt.backend
    assert isinstance(backend, SQLiteLedger)
    backend._wal.cadence, backend._wal.rewind_frames = _CADENCE, _REWIND
    return backend


def _wal_bytes(backend: SQLiteLedger) -> int:
    try:
        return os.stat(backend.path + "-wal").st_size
    except FileNotFoundError:
        return 0


def _fill(rt: Runtime, events: int) -> int:
    """Append ``events`` padded events; the largest WAL file seen after any of them."""
    backend, largest = _ledger(rt), 0
    for i in range(events):
        rt.record("WalTestNote", {"pad": _PAD, "i": i})
        largest = max(largest, _wal_bytes(backend))
    return largest


def test_commits_do_not_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    backend = _ledger(rt)
    assert backend._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    largest = _fill(rt, 300)  # ~2,100 frames: five rewind points' worth
    wal = backend._wal
    # How many rounds the thread gets depends on the machine's load (wake-ups that come
    # while it runs are one round); that it ran, and the bound, do not.
    assert wal.checkpoints >= 1, wal.checkpoints
    assert wal.rewinds + wal.truncations >= 2, (wal.rewinds, wal.truncations)
    # Twice the rewind point, plus the 32 commits between two looks at the file's size.
    assert largest <= (2 * _REWIND + 32 * 8) * _FRAME, largest / _FRAME
    rt.close()
    assert wal._thread is None


def test_the_wal_stays_bounded_when_the_thread_is_stopped(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    backend = _ledger(rt)
    backend._wal.close()  # the thread stopped: no passive checkpoint any more
    largest = _fill(rt, 600)  # ~4,200 frames: ten rewind points
    wal = backend._wal
    assert wal.checkpoints == 0
    assert wal.rewinds + wal.truncations >= 3, (wal.rewinds, wal.truncations)
    # Twice the rewind point, plus the 32 commits between two looks at the file's size.
    assert largest <= (2 * _REWIND + 32 * 8) * _FRAME, largest / _FRAME
    assert rt.verify().events == backend.count()
    rt.close()


def test_close_waits_for_a_running_checkpoint(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    backend = _ledger(rt)
    wal = backend._wal
    _fill(rt, 40)  # the thread has started and run
    assert wal._thread is not None
    # Hold the turn the thread takes for each checkpoint, wake it, and close meanwhile:
    # the thread is inside its round, and close must wait for it, not pull the
    # connection from under it.
    wal._running.acquire()
    wal._commits = 10**6
    wal._wake.set()
    deadline = time.monotonic() + 10
    while wal._wake.is_set():  # the thread took the wake-up and waits for its turn
        assert time.monotonic() < deadline
        time.sleep(0.001)
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (rt.close(), closed.set()))
    closer.start()
    assert not closed.wait(0.2)  # waiting for the thread's checkpoint
    wal._running.release()
    assert closed.wait(10)
    closer.join()
    assert wal._thread is None
    again = Runtime.open(tmp_path / "ws")
    assert again.verify().events == again.backend.count()
    again.close()


def test_a_durable_ledger_checkpoints_with_full_sync(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db", durable=True)
    assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger._wal._synchronous == "FULL"
    ledger.close()
    plain = SQLiteLedger(tmp_path / "m.db")
    assert plain._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert plain._wal._synchronous == "NORMAL"
    plain.close()


def test_a_busy_rewind_does_not_fail_the_commit(tmp_path: Path) -> None:
    """A reader of another connection holding an old snapshot makes the writer's rewind
    busy: the append that triggered it still succeeds, nothing waits 30 s."""
    rt = Runtime.init(tmp_path / "ws")
    backend = _ledger(rt)
    backend._wal.close()
    reader = sqlite3.connect(backend.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()  # a read snapshot held
    before = backend.count()
    _fill(rt, 300)
    assert backend.count() == before + 300
    assert backend._wal.rewinds == backend._wal.truncations == 0  # each was busy
    reader.execute("COMMIT")
    reader.close()
    assert rt.verify().events == backend.count()
    rt.close()


# The child appends padded events and prints each committed seq; its checkpoint thread
# prints CKPT as it enters SQLite for a checkpoint and DONE as it leaves (a profile hook on
# the thread, nothing in the product knows of it); the parent SIGKILLs it at a CKPT.
_CHILD = """
import sys, threading
from ouroboros.kernel import Runtime
def hook(frame, event, arg):
    if frame.f_code.co_name == "_run" and frame.f_code.co_filename.endswith(
            "storage/wal.py") and getattr(arg, "__name__", "") == "execute":
        if event == "c_call":
            sys.stdout.write("CKPT\\n"); sys.stdout.flush()
        elif event == "c_return":
            sys.stdout.write("DONE\\n"); sys.stdout.flush()
threading.setprofile(hook)
rt = Runtime.open(sys.argv[1])
for i in range(100000):
    seq = rt.record("WalTestNote", {"pad": "x" * 40000, "i": i})
    sys.stdout.write(f"{seq}\\n"); sys.stdout.flush()
"""


def _kill_at_a_checkpoint(home: Path, kill_at: int) -> tuple[list[int], bool]:
    """Run the child until its ``kill_at``-th CKPT (the first two are the connection's
    pragmas), SIGKILL it; the seqs it saw committed, and whether the checkpoint was still
    running (no DONE after that CKPT)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    committed: list[int] = []
    marks = 0
    try:
        for line in child.stdout:
            if line.strip() == "CKPT":
                marks += 1
                if marks == kill_at:
                    os.kill(child.pid, signal.SIGKILL)
                    break
            elif line.strip() != "DONE":
                committed.append(int(line))
        rest = child.stdout.read()
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return committed, "DONE" not in rest


def test_a_process_killed_mid_checkpoint_loses_no_committed_event(tmp_path: Path) -> None:
    mid = 0
    for attempt in range(4):  # a loaded machine may let a checkpoint end before the kill
        home = tmp_path / f"ws{attempt}"
        Runtime.init(home).close()
        committed, during = _kill_at_a_checkpoint(home, 3 + attempt % 2)
        mid += during
        assert len(committed) > 100
        rt = Runtime.open(home)
        report = rt.verify()
        stored = {ev.seq for ev in rt.backend.read()}
        assert set(committed) <= stored  # every commit the child saw return is there
        assert report.events == len(stored) == max(stored) + 1
        rt.close()
        if mid >= 2:
            break
    assert mid >= 1, "no kill landed inside a checkpoint"


def test_short_lived_writers_beside_a_long_lived_reader_keep_the_wal_bounded(
        tmp_path: Path) -> None:
    # Each process counts its own commits towards the cadence: writers that open, append
    # once and close (one `ouro` command each) never reached it, and with a server's
    # connection open SQLite's last-close checkpoint never came either, so the WAL grew
    # by every command's frames for good (automatic checkpoints had bounded it)
    Runtime.init(tmp_path / "ws").close()
    server = Runtime.open(tmp_path / "ws")  # holds a connection, never writes
    largest = 0
    for i in range(150):  # ~1,050 frames: past twice the rewind point
        rt = Runtime.open(tmp_path / "ws")
        backend = _ledger(rt)
        rt.record("WalTestNote", {"pad": _PAD, "i": i})
        rt.close()
        largest = max(largest, _wal_bytes(backend))
    assert largest <= 2 * _REWIND * _FRAME, largest / _FRAME
    assert server.verify().events == server.backend.count()
    server.close()
