"""A process that takes one of the runtime's locks and never lets go (Ctrl-Z or
``kill -STOP`` of an ``ouro`` command while it holds it, or a one-liner holding
``flock``): everyone else waited for ever. Each wait is now bounded by
``OURO_LOCK_TIMEOUT`` (here 1 s) and ends in one line naming the lock and its holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict
from ouroboros.storage import files

BOUND = 1.0
SLACK = 45.0  # "returned within the bound plus slack", never a speed assertion

_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[2:] == ["shared"] else fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


class Holder:
    """A real child process holding ``flock`` on ``path`` until released."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path),
                                      *(["shared"] if shared else [])],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def held() -> Iterator[list[Holder]]:
    holders: list[Holder] = []
    yield holders
    for h in holders:
        h.release()


def _env() -> dict[str, str]:
    return {**os.environ, "OURO_LOCK_TIMEOUT": str(BOUND)}


def ouro(*args: str, home: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                       capture_output=True, text=True, timeout=120, env=_env())
    return r, time.monotonic() - start


def _envelope(rt: Runtime, tmp_path: Path, i: int, agent: str = "a") -> Path:
    env = rt.sign(rt.propose(type="routing", target=f"agents/{agent}/routing", value={"w": i},
                             reasoning="tune", author="root"), "root")
    path = tmp_path / f"patch{i}.json"
    path.write_text(json.dumps(envelope_to_dict(env)))
    return path


def _one_clear_line(r: subprocess.CompletedProcess[str], lock: Path, pid: int) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert str(lock) in first and f"process {pid}" in first, r.stderr


def test_submit_approve_rollback_give_up_on_a_held_ledger_lock_then_work(
        tmp_path: Path, held: list[Holder]) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 0},
                          reasoning="tune", author="root")
    first = _envelope(rt, tmp_path, 1)
    rt.close()
    lock = home / "ledger.db.lock"
    holder = Holder(lock)
    held.append(holder)
    # `state` too: opening a runtime reads the signed checkpoint under the writers' lock
    for args in (("patch", "submit", str(first)), ("rollback", "--to", "1"), ("state",)):
        r, took = ouro(*args, home=home)
        assert took < BOUND + SLACK
        _one_clear_line(r, lock, holder.pid)
    r, _ = ouro("patch", "submit", str(first), "--json", home=home)
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "failure" and str(lock) in err["message"]
    holder.release()
    r, _ = ouro("patch", "submit", str(first), home=home)
    assert r.returncode == 0, r.stderr
    r, _ = ouro("verify", home=home)
    assert r.returncode == 0, r.stderr
    rt = Runtime.open(home)
    try:
        assert rt.value("agents/a/routing") == {"w": 1}
    finally:
        rt.close()


def test_a_stopped_ouro_submit_holding_the_lock_does_not_hang_the_next(
        tmp_path: Path) -> None:
    """SIGSTOP of a real ``ouro patch submit`` caught holding the writers' lock."""
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    envs = [_envelope(rt, tmp_path, i, agent) for i, agent in enumerate("ab")]
    rt.close()
    lock = home / "ledger.db.lock"
    # The victim stops itself the first time it holds the lock.
    stopper = ("import os, signal, sys, runpy\n"
               "import ouroboros.storage.sqlite as s\n"
               "orig = s._exclusive.__enter__\n"
               "once = []\n"
               "def enter(self):\n"
               "    orig(self)\n"
               "    if not once:\n"
               "        once.append(1)\n"
               "        os.kill(os.getpid(), signal.SIGSTOP)\n"
               "s._exclusive.__enter__ = enter\n"
               "sys.argv = ['ouro'] + sys.argv[1:]\n"
               "runpy.run_module('ouroboros', run_name='__main__')\n")
    victim = subprocess.Popen([sys.executable, "-c", stopper, "patch", "submit",
                               str(envs[0]), "--home", str(home)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(f"/proc/{victim.pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "T":
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the victim never stopped holding the lock")
        r, took = ouro("patch", "submit", str(envs[1]), home=home)
        assert took < BOUND + SLACK
        _one_clear_line(r, lock, victim.pid)
    finally:
        victim.send_signal(signal.SIGCONT)
        _, err = victim.communicate(timeout=60)
    assert victim.returncode == 0, err
    r, _ = ouro("patch", "submit", str(envs[1]), home=home)
    assert r.returncode == 0, r.stderr
    r, _ = ouro("verify", home=home)
    assert r.returncode == 0, r.stderr


def test_a_bad_lock_timeout_is_a_usage_error(tmp_path: Path, held: list[Holder]) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    env_file = _envelope(rt, tmp_path, 1)
    rt.close()
    held.append(Holder(home / "ledger.db.lock"))
    for bad in ("nan", "-1", "1e308", "soon"):
        r = subprocess.run([sys.executable, "-m", "ouroboros", "patch", "submit",
                            str(env_file), "--home", str(home)], capture_output=True,
                           text=True, timeout=60,
                           env={**os.environ, "OURO_LOCK_TIMEOUT": bad})
        assert r.returncode == 2 and "OURO_LOCK_TIMEOUT" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_a_held_witness_copy_does_not_stop_appends(tmp_path: Path, held: list[Holder]) -> None:
    """A witness on a shared mount: anyone who can open its checkpoint copy can ``flock``
    it. Every append (under the ledger's lock) waited for ever; now the witness is skipped
    after the bound and the append stands; the copy lags (consistent, so ``verify`` passes)
    and catches up on the next append once the lock is free."""
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    witness = rt.add_witness(tmp_path / "witness")
    envs = [_envelope(rt, tmp_path, i, agent) for i, agent in enumerate("ab")]
    rt.close()
    copy = next(witness.glob("*.checkpoint"))
    before = files.tree_size(copy.read_bytes())
    holder = Holder(copy, shared=True)  # read access is all flock needs
    held.append(holder)
    r, took = ouro("patch", "submit", str(envs[0]), home=home)
    assert took < BOUND + SLACK
    assert r.returncode == 0, r.stderr
    assert files.tree_size(copy.read_bytes()) == before
    r, _ = ouro("verify", home=home)
    assert r.returncode == 0, r.stderr
    holder.release()
    r, _ = ouro("patch", "submit", str(envs[1]), home=home)
    assert r.returncode == 0, r.stderr
    assert files.tree_size(copy.read_bytes()) == before + 2
    r, _ = ouro("verify", home=home)
    assert r.returncode == 0, r.stderr


def test_no_wait_refuses_only_until_something_was_committed(
        tmp_path: Path, held: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    """The server submits on its event loop under ``no_wait`` and redoes a refused submit
    in a thread. A refusal after the block committed (a failed effect's record) would make
    that redo skip what the first attempt had left to do: from the commit on, it waits."""
    from ouroboros.storage.files import LockTimeout
    from ouroboros.storage.sqlite import LedgerBusy, no_wait

    monkeypatch.setenv("OURO_LOCK_TIMEOUT", "0.5")
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    try:
        held.append(Holder(home / "ledger.db.lock"))
        with no_wait(), pytest.raises(LedgerBusy):
            rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                                  reasoning="tune", author="root")
        held.pop().release()
        with no_wait():
            rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                                  reasoning="tune", author="root")
            held.append(Holder(home / "ledger.db.lock"))
            with pytest.raises(LockTimeout):
                rt.propose_and_submit(type="routing", target="agents/b/routing",
                                      value={"w": 1}, reasoning="tune", author="root")
        held.pop().release()
        assert rt.value("agents/a/routing") == {"w": 1}
        rt.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 2},
                              reasoning="tune", author="root")
        assert rt.verify().events == rt.backend.count()  # raises if it does not verify
    finally:
        rt.close()


def test_a_held_skill_metrics_lock_bounds_the_call_and_loses_no_count(
        tmp_path: Path, held: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tool run (CLI, ``ouro serve``, MCP) appends its call line under the version
    folder's ``.lock``; a process holding it exclusively made every run of that version
    hang. Now `LockTimeout` after the bound, and calls after the release all count."""
    import json as json_

    from ouroboros.capabilities.skills import metrics
    from ouroboros.storage.files import LockTimeout

    monkeypatch.setenv("OURO_LOCK_TIMEOUT", "0.5")
    d = tmp_path / "v"
    d.mkdir()
    (d / "meta.json").write_text(json_.dumps({"tool_id": "t", "metrics": metrics.empty()}))
    metrics.append(d, ok=True, elapsed_ms=1.0)  # the appender now keeps the files open
    holder = Holder(d / ".lock")
    held.append(holder)
    start = time.monotonic()
    with pytest.raises(LockTimeout, match=f"process {holder.pid}"):
        metrics.append(d, ok=False, elapsed_ms=1.0)
    assert time.monotonic() - start < 0.5 + SLACK
    held.pop().release()
    metrics.append(d, ok=False, elapsed_ms=2.0)
    metrics.append(d, ok=True, elapsed_ms=3.0)
    folded = metrics.fold(d, lambda p, m: p.write_text(json_.dumps(m)))
    assert folded["metrics"]["uses"] == 3


def test_a_held_telemetry_spool_drops_the_span_and_never_fails_the_run(
        tmp_path: Path, held: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    """`ouro tool run` spools its span under the spool's shared lock; a holder of the
    exclusive lock hung every run. Now the span is dropped after the bound (telemetry
    never fails a run) and the next one, after the release, is written."""
    from ouroboros.capabilities import tracing

    monkeypatch.setenv("OURO_LOCK_TIMEOUT", "0.5")
    spool = tmp_path / "spool.jsonl"
    spool.write_bytes(b"")
    held.append(Holder(spool))
    start = time.monotonic()
    tracing._spool(spool, "held", tracing._SpooledSpan({}), 0, 1)  # does not raise
    assert time.monotonic() - start < 0.5 + SLACK
    assert spool.read_bytes() == b""
    held.pop().release()
    tracing._spool(spool, "free", tracing._SpooledSpan({}), 0, 1)
    assert [json.loads(line)["name"] for line in spool.read_text().splitlines()] == ["free"]


def _append_through_timeouts(home: str, who: str, n: int) -> None:
    """Submit ``n`` patches with a bound so short that most contended waits give up."""
    os.environ["OURO_LOCK_TIMEOUT"] = "0.001"
    from ouroboros.storage.ledger import LedgerUnavailable

    while True:
        try:
            rt = Runtime.open(home)
            break
        except Exception:  # the open's checkpoint read gave up: try again
            continue
    done = 0
    while done < n:
        try:
            rt.propose_and_submit(type="routing", target=f"agents/{who}/routing",
                                  value={"w": done}, reasoning="race", author="root")
            done += 1
        except LedgerUnavailable:
            continue
    rt.close()


def test_given_up_waits_never_strand_the_lock_nor_lose_or_fork_events(tmp_path: Path) -> None:
    """Each given-up wait leaves a thread that takes the lock later and drops it: it must
    never be left held (everyone would stall), never be dropped under a later holder of
    the same process, and no event may be lost or forked."""
    import multiprocessing

    home = tmp_path / "ws"
    Runtime.init(home).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_through_timeouts, args=(str(home), who, 40))
             for who in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(SLACK * 4)
        assert p.exitcode == 0
    rt = Runtime.open(home)
    try:
        assert rt.verify().events == 1 + 3 * 40
        assert {rt.value(f"agents/{w}/routing")["w"] for w in "abc"} == {39}
    finally:
        rt.close()


_SQLITE_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(600)
"""


class SQLiteHolder(Holder):
    """A real child holding SQLite's own write lock, not the ledger's lock file."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SQLITE_HOLDER, str(path)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"


def test_sqlites_own_write_lock_is_refused_under_no_wait_and_bounded_on_redo(
        tmp_path: Path, held: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's write lock held by another process without the lock file: a `no_wait`
    append (the server's event loop) waited SQLite's 30 s busy timeout. Now it is
    `LedgerBusy` before anything is written; the redo (no `no_wait`) waits at most
    OURO_LOCK_TIMEOUT, then a `LockTimeout` naming the database, not a raw sqlite error;
    a snapshot due after a `no_wait` commit is skipped, not a failure of the commit."""
    from ouroboros.storage.files import LockTimeout
    from ouroboros.storage.sqlite import LedgerBusy, no_wait

    monkeypatch.setenv("OURO_LOCK_TIMEOUT", "0.5")
    home = tmp_path / "ws"
    rt = Runtime.init(home, snapshot_interval=1)
    try:
        with no_wait():
            rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                                  reasoning="tune", author="root")
        count = rt.backend.count()
        snapshots = rt.backend.snapshot_seqs()
        held.append(SQLiteHolder(home / "ledger.db"))
        with no_wait(), pytest.raises(LedgerBusy):
            rt.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 1},
                                  reasoning="tune", author="root")
        assert rt.backend.count() == count
        # the snapshot due now (a cache of the fold) is skipped, nothing raised
        rt.backend.put_snapshot(rt.backend.latest_snapshot())  # type: ignore[arg-type]
        with pytest.raises(LockTimeout) as e:
            rt.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 1},
                                  reasoning="tune", author="root")
        assert str(home / "ledger.db") in e.value.message
        assert rt.backend.count() == count
        held.pop().release()
        rt.propose_and_submit(type="routing", target="agents/b/routing", value={"w": 2},
                              reasoning="tune", author="root")
        assert rt.value("agents/b/routing") == {"w": 2}
        assert rt.backend.snapshot_seqs() != snapshots
        assert rt.verify().events == rt.backend.count()
    finally:
        rt.close()
