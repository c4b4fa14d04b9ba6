"""The audit gate's default injection markers on a public corpus nobody here tuned on.

Recall: the share of `bench/data/public/injections/giskard_prompt_injections.csv` (35
jailbreak and hijacking prompts, held back: see its PROVENANCE.md) in which the gate's
marker scan finds an injection, for the markers of this tree and for the markers before
the families (the first 15 defaults, what every workspace made before 2026-12-07 holds).
False alarms: the same two marker sets on text that must pass: this repository's own
commit messages read as a patch's reasoning (texts about changing prompts, rules and
instructions). With ``--system-prompts DIR`` also a folder of real system prompts (e.g.
a checkout of github.com/jujumilk3/leaked-system-prompts; its files often carry the
extraction prompt that leaked them, so a flagged file is not always a false alarm).

Run: .venv/bin/python bench/audit_public.py [--system-prompts DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG
from ouroboros.kernel.scan import scan

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench/data/public/injections/giskard_prompt_injections.csv"
NEW = list(DEFAULT_AUDIT_CONFIG["injection_markers"])
OLD = NEW[:15]  # the defaults before the families (kept first in the list)


def _flagged(text: str, markers: list[str]) -> bool:
    return bool(scan(text, markers).injections)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system-prompts", type=Path, default=None)
    ap.add_argument("--out", default="bench/results/audit_public.json")
    args = ap.parse_args()
    rows = list(csv.DictReader(CORPUS.open(encoding="utf-8")))
    log = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%B%x00"],
                         capture_output=True, text=True, check=True).stdout.split("\0")
    messages = [m.strip() for m in log if m.strip()]
    report: dict[str, object] = {"corpus": CORPUS.name, "prompts": len(rows),
                                 "commit messages": len(messages)}
    for name, markers in (("before families", OLD), ("this tree", NEW)):
        by: Counter[str] = Counter()
        t = time.perf_counter()
        caught = 0
        for r in rows:
            hit = _flagged(r["prompt"], markers)
            caught += hit
            by[r["group"]] += hit
        false = sum(_flagged(m, markers) for m in messages)
        row: dict[str, object] = {"caught": caught, "recall": caught / len(rows),
                                  "by group": dict(by), "commit messages flagged": false,
                                  "seconds": time.perf_counter() - t}
        if args.system_prompts:
            files = sorted(p for p in args.system_prompts.glob("*.md")
                           if p.name != "README.md")
            row["system prompt files flagged"] = sum(
                _flagged(p.read_text(encoding="utf-8", errors="replace"), markers)
                for p in files)
            row["system prompt files"] = len(files)
        report[name] = row
        print(f"{name:16s} caught {caught}/{len(rows)} ({caught / len(rows):.0%}) "
              f"{dict(by)}; commit messages flagged {false}/{len(messages)}"
              + (f"; system prompt files flagged {row['system prompt files flagged']}"
                 f"/{row['system prompt files']}" if args.system_prompts else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
