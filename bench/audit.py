"""Audit gate benchmark: what the hardened audit costs on the governed submit path.

Side by side, in one run, interleaved round by round (the machine is shared and noisy):
- **before**: the audit gate of a baseline revision (default: the commit before the
  hardening), run from that revision's sources in a child process;
- **after**: the audit gate of this tree;
- **no audit**: this tree with the audit gate removed, the physical limit of the rest.

Each child measures end-to-end submits/s (propose, sign, every gate, append) on three
workloads: routing re-tunes (the kernel bench's), distinct ASCII prompts, and distinct
prompts with accents, Cyrillic and emoji (the slow path of text folding). It also times
the audit gate's own check inside those submits (facts + policy decision, cache on), in
CPU time, and gives submits/s by CPU time beside the wall-clock figure: on a shared
machine the CPU figures compare the code, the wall-clock ones the moment.

Run: .venv/bin/python bench/audit.py [--baseline REV] [--rounds 5] [--n 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ("You are the research agent. Answer in short paragraphs, cite the documentation "
          "at https://docs.python.org/3/ when it helps, never guess an API, and ask before "
          "running anything that writes. Keep a list of open questions; variant {i}. ") * 3
UNICODE = ("Vous êtes l'agent de recherche — répondez brièvement. Отвечайте кратко, "
           "ссылайтесь на документацию 📚 и не выдумывайте API; вариант {i}. ") * 3


def child(n: int, mode: str) -> dict[str, float]:
    from ouroboros.kernel import Runtime

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        rt = Runtime.init(Path(d) / "ws")
        trust = rt.value("kernel/trust")  # let the runtime key sign prompts too
        trust["delegations"][0]["types"].append("prompt")
        assert rt.submit(rt.sign(rt.propose("trust", "kernel/trust", value=trust, reasoning="b",
                                            author="operator"), "root")).status == "applied"
        if mode == "no-audit":
            rt.gates = [g for g in rt.gates if getattr(g, "name", "") != "audit"]
        spent = [0.0]
        for gate in rt.gates:  # time the audit gate's own check inside the real submits
            if getattr(gate, "name", "") == "audit":
                check = gate.check

                def timed_check(sub: Any, check: Any = check) -> Any:
                    t0 = time.process_time()  # CPU time: the other tenants' load aside
                    try:
                        return check(sub)
                    finally:
                        spent[0] += time.process_time() - t0

                gate.check = timed_check  # type: ignore[method-assign]
        counter = iter(range(10**9))

        def submits(kind: str) -> None:
            for _ in range(n):
                i = next(counter)
                if kind == "routing":
                    kw: dict[str, Any] = {"type": "routing", "target": f"agents/a{i % 50}/routing",
                                          "value": {"w": i, "b": 0.5}}
                else:
                    text = (PROMPT if kind == "prompt" else UNICODE).format(i=i)
                    kw = {"type": "prompt", "target": f"agents/a{i % 50}/prompt", "value": text}
                o = rt.propose_and_submit(reasoning="tune", author="bench", **kw)
                assert o.status == "applied", o.reason

        for kind in ("routing", "prompt", "unicode"):
            submits(kind)  # warm: first patch per target, caches
            spent[0] = 0.0
            t, c = time.perf_counter(), time.process_time()
            submits(kind)
            out[kind] = n / (time.perf_counter() - t)
            out[f"{kind}, by CPU time"] = n / (time.process_time() - c)
            if mode == "audit":
                out[f"audit gate µs/patch, {kind}"] = spent[0] / n * 1e6
        rt.close()
    return out


def run_child(src: Path, n: int, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(n)],
                          env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def baseline_tree(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
                          capture_output=True, check=True).stdout
    tar_path = into / "base.tar"
    tar_path.write_bytes(data)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="ebe8690",
                    help="revision whose audit gate is the 'before' column")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--child", choices=["audit", "no-audit"])
    ap.add_argument("--out", default="bench/results/audit.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.n, args.child)))
        return
    with tempfile.TemporaryDirectory() as d:
        base = baseline_tree(args.baseline, Path(d))
        columns = {"before": (base, "audit"), "after": (ROOT / "src", "audit"),
                   "no audit": (ROOT / "src", "no-audit")}
        rounds: dict[str, list[dict[str, float]]] = {c: [] for c in columns}
        for _ in range(args.rounds):  # interleaved, so a slow phase hits every column
            for name, (src, mode) in columns.items():
                rounds[name].append(run_child(src, args.n, mode))
    kinds = ("routing", "prompt", "unicode")
    keys = [*kinds, *(f"{k}, by CPU time" for k in kinds),
            *(f"audit gate µs/patch, {k}" for k in kinds)]
    table = {name: {k: median(r[k] for r in runs if k in r) if any(k in r for r in runs)
                    else float("nan") for k in keys} for name, runs in rounds.items()}
    load = os.getloadavg()[0]
    print(f"# audit benchmark: median of {args.rounds} interleaved rounds of {args.n} "
          f"submits; baseline {args.baseline}; load {load:.1f}; {os.cpu_count()} cores")
    print(f"{'submits/s (or µs)':<34}{'before':>10}{'after':>10}{'no audit':>10}"
          f"{'after/before':>14}")
    for k in keys:
        row = table["before"][k], table["after"][k], table["no audit"][k]
        print(f"{k:<34}" + "".join(f"{v:>10,.1f}" for v in row) + f"{row[1] / row[0]:>14.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"load": load, "rounds": rounds, "median": table},
                                         indent=2))


if __name__ == "__main__":
    main()
