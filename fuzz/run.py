"""Fuzz every harness (or those named) for a bounded time each: ``make fuzz``.

Each target runs as its own process (atheris instruments the code it imports) over a
corpus under ``--corpus`` (never the repository), seeded from the harness's ``seeds()``.
Prints executions per second and any crash file; exits 1 if a target crashed.

    python fuzz/run.py [--seconds 60] [--corpus /tmp/ouro-fuzz] [target ...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Targets that share a dictionary of tokens (dicts/NAME.dict) with another.
DICTS = {"json_input": "json", "mcp": "json", "settings": "settings"}
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/ouro-fuzz"))
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=TARGETS,
                        metavar="target", help=", ".join(TARGETS))
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])}
    failed = []
    for target in args.targets or TARGETS:
        corpus = args.corpus / target
        corpus.mkdir(parents=True, exist_ok=True)
        for seed in importlib.import_module(f"fuzz_{target}").seeds():
            (corpus / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)
        artifacts = args.corpus / "crashes" / target
        artifacts.mkdir(parents=True, exist_ok=True)
        tmp = args.corpus / "tmp"  # workspaces the harnesses make
        tmp.mkdir(exist_ok=True)
        words = HERE / "dicts" / f"{DICTS.get(target, target)}.dict"
        log = args.corpus / f"{target}.log"
        started = time.monotonic()
        with log.open("w") as out:
            run = subprocess.run(
                [sys.executable, str(HERE / f"fuzz_{target}.py"),
                 f"-max_total_time={args.seconds}", "-print_final_stats=1",
                 "-rss_limit_mb=4096", "-timeout=30", f"-artifact_prefix={artifacts}/",
                 *([f"-dict={words}"] if words.is_file() else []), str(corpus)],
                env={**env, "TMPDIR": str(tmp)}, stdout=out, stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - started
        text = log.read_text(errors="replace")
        stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", text))
        runs = int(stats.get("number_of_executed_units", 0))
        rate = runs / max(elapsed, 1e-9)
        crash = re.findall(r"Test unit written to (\S+)", text)
        print(f"{target:12} {runs:9d} runs in {elapsed:4.0f} s ~{rate:6.0f}/s  "
              f"{'CRASH ' + crash[0] if crash else ('exit ' + str(run.returncode) if run.returncode else 'ok')}"
              f"  (log: {log})", flush=True)
        if run.returncode:
            failed.append(target)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
