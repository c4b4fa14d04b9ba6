"""Issue 14: governed submits/s with 1, 2 and 4 writer processes on SQLite and on a
PostgreSQL ledger (a throw-away local server, fsync on), in one run; then a kill test:
writers SIGKILLed mid-append, counting forks and acknowledged events that went missing.
Run through ``bench/kernel.py --backend postgresql``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ouroboros.kernel import Runtime
from ouroboros.storage.postgres.server import LocalServer


def _writer(home: str, n: int, who: str, start: Any) -> None:
    rt = Runtime.open(home)
    start.wait()
    for i in range(n):
        o = rt.propose_and_submit(type="routing", target=f"agents/{who}{i % 50}/routing",
                                  value={"w": i, "b": 0.5}, reasoning="tune", author=who)
        assert o.status == "applied"
    rt.close()


def _rate(ledger: str | None, writers: int, n: int, durable: bool = False) -> float:
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        Runtime.init(home, ledger=ledger, durable=durable).close()
        start = ctx.Event()
        procs = [ctx.Process(target=_writer, args=(str(home), n, f"w{k}", start))
                 for k in range(writers)]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let every writer open the workspace first
        t = time.perf_counter()
        start.set()
        for p in procs:
            p.join()
            assert p.exitcode == 0
        dt = time.perf_counter() - t
        rt = Runtime.open(home)
        assert len(rt.log(kind="PatchApplied")) == writers * n
        rt.verify()
        rt.close()
    return writers * n / dt


_KILLED = """
import sys
from ouroboros.kernel import Runtime
rt = Runtime.open(sys.argv[1])
who = sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    o = rt.propose_and_submit(type="routing", target=f"agents/{who}{i % 9}/routing",
                              value={"w": i}, reasoning="kill", author=who)
    print(o.seq, flush=True)  # acknowledged: must be in the ledger whatever happens next
    i += 1
"""


def kill_test(url: str, rounds: int = 10, writers: int = 4) -> dict[str, int]:
    """SIGKILL ``writers`` processes at random moments, ``rounds`` times; return the
    acknowledged submits, forks (duplicate or missing seqs) and lost acknowledged events."""
    acked = forks = lost = 0
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        Runtime.init(home, ledger=url).close()
        script = Path(d) / "killed.py"
        script.write_text(_KILLED)
        for r in range(rounds):
            procs = [subprocess.Popen([sys.executable, str(script), str(home), f"k{r}_{k}"],
                                      stdout=subprocess.PIPE, text=True)
                     for k in range(writers)]
            seqs: list[int] = []
            for p in procs:  # each is in its submit loop (one acknowledged) before the kill
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
                seqs.append(int(p.stdout.readline()))
            time.sleep(0.05 + 0.03 * r)
            for p in procs:
                os.kill(p.pid, signal.SIGKILL)
            for p in procs:
                out, _ = p.communicate()
                seqs += [int(x) for x in out.split()]
            rt = Runtime.open(home)
            rt.verify()
            stored = [e.seq for e in rt.log()]
            forks += len(stored) - len(set(stored)) + (stored != list(range(len(stored))))
            applied = {e.seq for e in rt.log(kind="PatchApplied")}
            lost += sum(1 for s in seqs if s not in applied)
            acked += len(seqs)
            rt.close()
    return {"acknowledged submits": acked, "forks": forks, "lost acknowledged events": lost}


def run(n: int, counts: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with LocalServer(fsync=True) as pg:
        pg.create_database("bench")
        for writers in counts:
            out[f"sqlite: submits/s, {writers} writer(s)"] = _rate(None, writers, n)
            for durable, label in ((False, "postgresql"), (True, "postgresql durable")):
                ledger = pg.url("bench", ledger=f"b{writers}_{int(durable)}")
                out[f"{label}: submits/s, {writers} writer(s)"] = _rate(ledger, writers, n,
                                                                       durable)
        out.update({f"postgresql kill test: {k}": v
                    for k, v in kill_test(pg.url("bench", ledger="kill")).items()})
    return out
