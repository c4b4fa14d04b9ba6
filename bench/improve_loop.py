"""Benchmark of the proposal half of the improve capability (real git, real kernel).

1. Policy tests (the audit rules, pure) on a one-file agents.yaml diff: checks/s.
2. Planner: findings -> drafts with diffs: drafts/s.
3. One proposal through the kernel: branch from the pinned base + validation pipeline +
   policy tests + ledger (submit), then approval (gates again + merge into main).
4. A blocked proposal (forbidden path): submit until rejection and branch cleanup.

Usage: python bench/improve_loop.py [--rounds N] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.diffs import make_diff, parse_diff
from ouroboros.capabilities.improve.proposals.notify import RecordingNotifier
from ouroboros.capabilities.improve.proposals.planner import Draft, plan
from ouroboros.capabilities.improve.proposals.policy import check_policy
from ouroboros.capabilities.improve.proposals.repo import example_deployment
from ouroboros.capabilities.improve.registrar import attach
from ouroboros.kernel import ManualClock, Runtime

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d")}


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/improve_loop.json"))
    args = parser.parse_args()

    agents = (example_deployment() / "agents.yaml").read_text()
    new = agents.replace("timeout_s: 30", "timeout_s: 60")
    changes = parse_diff(make_diff("agents.yaml", agents, new))
    policy_rate = rate(lambda: check_policy(changes, lambda p: agents, lambda p: new))

    finding = Finding("timeout_cluster", "high", "web_search", "ResearchAgent", "timeouts",
                      ("8 timeouts",), 8, {"timeouts": 8.0})
    planner_rate = rate(lambda: plan([finding], lambda p: agents if p == "agents.yaml" else None))

    submit_ms, approve_ms, blocked_ms = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(NOW)
        rt = Runtime.init(Path(tmp) / "ws", clock=clock)
        loop = attach(rt, notifier=RecordingNotifier())
        for i in range(args.rounds):
            runbook = loop.repo.read("main", "docs/runbook.md") or ""
            draft = Draft(f"bench{i}", f"Note {i}", "enhancement", "low", "-", (), "-", "-",
                          make_diff("docs/runbook.md", runbook, runbook + f"- note {i}\n"),
                          ("docs/runbook.md",), "-")
            holder: dict[str, Any] = {}
            submit_ms.append(timed(functools.partial(
                lambda d, h: h.setdefault("o", loop.propose(d)), draft, holder)))
            pid = holder["o"].proposal.id
            approve_ms.append(timed(functools.partial(loop.approve, pid)))
            loop.monitor.windows.clear()
            evil = Draft(f"evil{i}", "Evil", "bugfix", "low", "-", (), "-", "-",
                         make_diff("SYSTEM_CONTRACT.md", "", f"x{i}\n").replace(
                             "--- a/SYSTEM_CONTRACT.md", "--- /dev/null").replace(
                             "diff --git a/SYSTEM_CONTRACT.md b/SYSTEM_CONTRACT.md\n",
                             "diff --git a/SYSTEM_CONTRACT.md b/SYSTEM_CONTRACT.md\nnew file mode 100644\n"),
                         ("SYSTEM_CONTRACT.md",), "-")
            blocked_ms.append(timed(functools.partial(loop.propose, evil)))
            loop.breakers.reset()
            clock.advance(minutes=1)
        rt.close()

    rows = [
        ("policy tests (one agents.yaml diff)", f"{policy_rate:,.0f} checks/s"),
        ("planner (finding -> draft + diff)", f"{planner_rate:,.0f} drafts/s"),
        ("submit: branch + validation + policy + ledger", f"{statistics.median(submit_ms):.0f} ms (median)"),
        ("approve: gates again + merge into main", f"{statistics.median(approve_ms):.0f} ms (median)"),
        ("blocked proposal (forbidden path)", f"{statistics.median(blocked_ms):.0f} ms (median)"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    result = {"machine": machine(), "rounds": args.rounds, "policy_checks_per_s": policy_rate,
              "planner_drafts_per_s": planner_rate, "submit_ms": submit_ms,
              "approve_ms": approve_ms, "blocked_ms": blocked_ms}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
