"""Issue 17's submit-path figure: governed submits/s as a share of the physical limit.

Each round runs the submits in a fresh process (a fresh workspace, 300 untimed submits to
warm the caches, then three timed runs of ``--submits``, median kept), then measures the
physical limit in this process (3 Ed25519 signatures + 1 bare SQLite insert of an event,
``bench/kernel.py``'s own measure). With ``--baseline-src`` the same round also runs the
submits against another source tree (e.g. a checkout of the previous commit), so old and
new code alternate on the same machine minute by minute::

    python bench/submit_share.py --rounds 5 --baseline-src /path/to/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from kernel import _LIMIT, _meta, _physical_limits

# The child imports the tree under test (PYTHONPATH) and this bench's own submit loop.
_CHILD = """
import itertools, json, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from kernel import _sized_rate, _submit_rate
from ouroboros.kernel import Runtime
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    rt = Runtime.init(Path(d) / "ws")
    counter = itertools.count()
    run = _submit_rate if sys.argv[3] == "routing" else _sized_rate
    run(rt, counter, 300)
    rate = statistics.median(run(rt, counter, n) for _ in range(3))
    body = len(next(iter(rt.backend.read(rt.backend.count() - 1))).body)
    rt.close()
print(json.dumps({"rate": rate, "body": body}))
"""


def _rate(src: str, submits: int, workload: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(submits),
                          str(Path(__file__).resolve().parent), workload], env=env, check=True,
                         capture_output=True, text=True).stdout
    got: dict[str, float] = json.loads(out)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--submits", type=int, default=2000)
    ap.add_argument("--baseline-src", default=None,
                    help="another source tree to run beside this one in every round")
    ap.add_argument("--workload", choices=["routing", "sized"], default="routing",
                    help="routing: the standard submit (a value of nearly constant size); "
                         "sized: values whose size changes with nearly every submit, as "
                         "edited prompts do")
    ap.add_argument("--out", default="bench/results/submit_share.json")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"this": here} | ({"baseline": args.baseline_src} if args.baseline_src else {})
    rounds = []
    for r in range(args.rounds):
        row: dict[str, float] = {}
        for name, src in trees.items():
            got = _rate(src, args.submits, args.workload)
            row[f"{name} submits/s"] = got["rate"]
            body = int(got["body"])
        row["physical limit"] = _physical_limits(body, 2000)[_LIMIT]
        for name in trees:
            row[f"{name} share"] = row[f"{name} submits/s"] / row["physical limit"]
        rounds.append(row)
        print(f"round {r + 1}: " + "  ".join(f"{k} {v:,.3f}" if v < 10 else f"{k} {v:,.0f}"
                                              for k, v in row.items()), flush=True)
    summary = {k: statistics.median(row[k] for row in rounds) for k in rounds[0]}
    print("median: " + "  ".join(f"{k} {v:,.3f}" if v < 10 else f"{k} {v:,.0f}"
                                 for k, v in summary.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": _meta(), "rounds": rounds,
                                          "median": summary}, indent=2))


if __name__ == "__main__":
    main()
