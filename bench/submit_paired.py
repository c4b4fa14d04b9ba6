"""Per-submit latency of two source trees side by side: one long-lived process per tree,
batches alternated (so both see the same minute of a shared, noisy machine). Reports
p10 / p25 / p50 / p99 and the mean per tree; the mean carries what the percentiles below
p99 hide (a WAL checkpoint stalls about one commit in 400)::

    python bench/submit_paired.py --baseline-src /path/to/old/src --batches 12 --size 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# The child: a fresh workspace, 300 warm-up submits, then one batch per line on stdin,
# answering each with the batch's per-submit latencies (µs) as one JSON line.
_CHILD = """
import itertools, json, sys, tempfile, time
from pathlib import Path
from ouroboros.kernel import Runtime
sized = sys.argv[1] == "sized"
with tempfile.TemporaryDirectory() as d:
    rt = Runtime.init(Path(d) / "ws")
    counter = itertools.count()
    def batch(n):
        out = []
        for _ in range(n):
            i = next(counter)
            value = {"w": -i, "b": 0.5}
            if sized:
                value["m"] = {"p": "x" * (i // 50 % 997)}
            t = time.perf_counter()
            o = rt.propose_and_submit(type="routing", target=f"agents/s{i % 50}/routing",
                                      value=value, reasoning="tune", author="bench")
            out.append((time.perf_counter() - t) * 1e6)
            assert o.status == "applied", o
        return out
    batch(300)
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(batch(int(line))), flush=True)
    rt.close()
"""


def _spawn(src: str, workload: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, workload], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": src})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _batch(proc: subprocess.Popen[str], n: int) -> list[float]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    got: list[float] = json.loads(proc.stdout.readline())
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-src", required=True)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--workload", choices=["routing", "sized"], default="routing")
    ap.add_argument("--reverse", action="store_true", help="run the baseline first in each pair")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"this": here, "baseline": args.baseline_src}
    if args.reverse:
        trees = dict(reversed(trees.items()))
    procs = {name: _spawn(src, args.workload) for name, src in trees.items()}
    lat: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.batches):
        for name, proc in procs.items():
            lat[name] += _batch(proc, args.size)
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    for name in ("baseline", "this"):
        v = sorted(lat[name])
        q = statistics.quantiles(v, n=100)
        print(f"{name:8s} n={len(v)} p10 {q[9]:.1f} p25 {q[24]:.1f} p50 {q[49]:.1f} "
              f"p99 {q[98]:.1f} mean {statistics.fmean(v):.1f} µs "
              f"({1e6 / statistics.fmean(v):,.0f} submits/s)")


if __name__ == "__main__":
    main()
