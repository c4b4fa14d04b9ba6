"""Issue 14: governed submits/s with 1, 2 and 4 writer processes on SQLite and on a
PostgreSQL ledger (a throw-away local server, fsync on, unix socket), in one run, next to
the physical limits measured in the same run (Ed25519 sign and verify, a bare PostgreSQL
insert of an event-sized row over the same socket from 1 and 4 processes); then a kill
test: writers SIGKILLed mid-append, counting forks, acknowledged events that went missing,
and local checkpoints that ran ahead of the ledger or moved back.
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

from kernel import _submitter  # the SQLite benchmark's writer: the same work on both
from ouroboros.kernel import Runtime
from ouroboros.storage.postgres.server import LocalServer

#: Untimed submits each writer makes first (steady state: see ``_submitter``).
WARM = 20


def _rate(ledger: str | None, writers: int, n: int, durable: bool = False,
          warm: int = WARM) -> float:
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        Runtime.init(home, ledger=ledger, durable=durable).close()
        start = ctx.Barrier(writers + 1, timeout=120)  # every writer open and warmed up
        procs = [ctx.Process(target=_submitter, args=(str(home), n, f"w{k}", start, warm))
                 for k in range(writers)]
        for p in procs:
            p.start()
        start.wait()
        t = time.perf_counter()
        for p in procs:
            p.join()
            assert p.exitcode == 0
        dt = time.perf_counter() - t
        rt = Runtime.open(home)
        assert len(rt.log(kind="PatchApplied")) == writers * (n + warm)
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
    acked = forks = lost = ahead = back = 0
    anchored = 0  # the local checkpoint's tree size after the previous round
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
            size = rt.checkpoint().size
            ahead += size > len(stored)  # it vouches for events the ledger lacks
            back += size < anchored  # it moved back
            anchored = size
            forks += len(stored) - len(set(stored)) + (stored != list(range(len(stored))))
            applied = {e.seq for e in rt.log(kind="PatchApplied")}
            lost += sum(1 for s in seqs if s not in applied)
            acked += len(seqs)
            rt.close()
    return {"acknowledged submits": acked, "forks": forks, "lost acknowledged events": lost,
            "checkpoints ahead of the ledger": ahead, "checkpoints moved back": back}


def _event_size(url: str) -> int:
    """The size of one governed submit's ``PatchApplied`` row (body + signature)."""
    with tempfile.TemporaryDirectory() as d:
        rt = Runtime.init(Path(d) / "ws", ledger=url)
        o = rt.propose_and_submit(type="routing", target="agents/w0/routing",
                                  value={"w": 1, "b": 0.5}, reasoning="tune", author="w0")
        assert o.seq is not None
        ev = next(iter(rt.backend.read(o.seq, o.seq + 1)))
        rt.close()
        return len(ev.body) + len(ev.sig)


def _bare_inserts(url: str, table: str, size: int, n: int, durable: bool, start: Any,
                  done: Any) -> None:
    import psycopg

    row = os.urandom(size)
    with psycopg.connect(url, autocommit=True, prepare_threshold=0) as db:
        db.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        base = db.execute("SELECT pg_backend_pid()").fetchone()[0] * 10_000_000  # type: ignore[index]
        start.wait()
        t = time.perf_counter()
        for i in range(n):  # one row per transaction, as a governed submit commits
            db.execute(f"INSERT INTO {table} (seq, body) VALUES (%s, %s)", (base + i, row),
                       prepare=True)
        done.put(time.perf_counter() - t)


def physical_limits(url: str, size: int, n: int = 2000) -> dict[str, float]:
    """What no ledger on this machine can beat: Ed25519 (libsodium) over an event-sized
    message, and bare PostgreSQL inserts of event-sized rows over the same unix socket,
    one per transaction, from 1 and 4 processes (the server's own ceiling on these cores)."""
    import psycopg

    from ouroboros.kernel.keys import Signer, verify_signature

    signer = Signer.generate("limit")
    message = os.urandom(size)
    t = time.perf_counter()
    sigs = [signer.sign(message) for _ in range(n)]
    sign_rate = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(n):
        verify_signature(signer.public_hex, sigs[0], message)
    verify_rate = n / (time.perf_counter() - t)
    out = {"Ed25519 signatures/s (libsodium)": sign_rate,
           "Ed25519 verifications/s (libsodium)": verify_rate}
    ctx = multiprocessing.get_context("fork")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS bare (seq bigint PRIMARY KEY, body bytea)")
    for durable in (False, True):
        for procs in (1, 4):
            start, done = ctx.Event(), ctx.Queue()
            ps = [ctx.Process(target=_bare_inserts,
                              args=(url, "bare", size, n // procs, durable, start, done))
                  for _ in range(procs)]
            for p in ps:
                p.start()
            time.sleep(0.5)
            start.set()
            times = [done.get(timeout=300) for _ in ps]
            for p in ps:
                p.join()
            label = "synchronous_commit on" if durable else "synchronous_commit off"
            out[f"bare PostgreSQL inserts/s ({size}-byte rows, {label}, {procs} "
                f"process{'es' if procs > 1 else ''})"] = (n // procs) * procs / max(times)
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("TRUNCATE bare")
    bare = out[f"bare PostgreSQL inserts/s ({size}-byte rows, synchronous_commit off, "
               "4 processes)"]
    out["physical limit: submits/s (3 signatures + 1 transaction, 4 processes)"] = (
        1 / (3 / sign_rate + 1 / bare))
    return out


def growth(url: str, chunks: int = 8, per: int = 1000) -> list[float]:
    """One writer's submits/s in consecutive chunks of a growing ledger: flat unless a
    per-append cost grows with history (a plan that scans the patch index did)."""
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        Runtime.init(home, ledger=url).close()
        rt = Runtime.open(home)
        rates = []
        for c in range(chunks):
            t = time.perf_counter()
            for i in range(per):
                rt.propose_and_submit(type="routing", target=f"agents/g{i % 50}/routing",
                                      value={"w": i, "c": c}, reasoning="grow", author="g")
            rates.append(per / (time.perf_counter() - t))
        rt.close()
    return rates


def run(n: int, counts: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    out: dict[str, Any] = {"load before (1, 5, 15 min)": list(os.getloadavg())}
    with LocalServer(fsync=True) as pg:
        pg.create_database("bench")
        size = _event_size(pg.url("bench", ledger="size"))
        out.update(physical_limits(pg.url("bench"), size))
        rates = growth(pg.url("bench", ledger="growth"), per=max(n // 2, 50))
        out["postgresql, 1 writer: submits/s in consecutive chunks (growing ledger)"] = rates
        for writers in counts:
            out[f"sqlite: submits/s, {writers} writer(s)"] = _rate(None, writers, n)
            for durable, label in ((False, "postgresql"), (True, "postgresql durable")):
                ledger = pg.url("bench", ledger=f"b{writers}_{int(durable)}")
                out[f"{label}: submits/s, {writers} writer(s)"] = _rate(ledger, writers, n,
                                                                       durable)
        out.update({f"postgresql kill test: {k}": v
                    for k, v in kill_test(pg.url("bench", ledger="kill")).items()})
    out["load after (1, 5, 15 min)"] = list(os.getloadavg())
    return out
