"""Benchmark of the proposal half of the improve capability (real git, real kernel).

1. Policy tests (the audit rules, pure) on a one-file agents.yaml diff: checks/s.
2. Planner: findings -> drafts with diffs: drafts/s.
3. One proposal through the kernel: branch from the pinned base + validation pipeline +
   policy tests + ledger (submit), then approval (gates again + merge into main).
4. A blocked proposal (forbidden path): submit until rejection and branch cleanup.
5. Finding -> pending proposal, side by side in one run: the rule templates (the offline
   default) and the LLM WriterAgent against a local OpenAI-compatible server that answers
   at once (so what is measured is the loop: prompt, client, preflight = git apply +
   validation + policy, then the kernel's gates), once accepted at the first attempt and
   once repaired after a refused first answer; the bare HTTP round trip is the floor.

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
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.diffs import make_diff, parse_diff
from ouroboros.capabilities.improve.proposals.notify import RecordingNotifier
from ouroboros.capabilities.improve.proposals.planner import Draft, plan
from ouroboros.capabilities.improve.proposals.policy import check_policy
from ouroboros.capabilities.improve.proposals.repo import example_deployment
from ouroboros.capabilities.improve.proposals.writer import LLMWriter, RuleWriter
from ouroboros.capabilities.improve.registrar import attach
from ouroboros.capabilities.llm import LLMConfig, OpenAICompatibleProvider
from ouroboros.kernel import ManualClock, Runtime
from ouroboros.kernel.settings import WriterSettings

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


class StubLLM:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 answering from a queue at once."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                content = outer.answers.pop(0) if outer.answers else '{"no_change": "none"}'
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                   "model": "stub", "choices": [{"index": 0, "finish_reason":
                                   "stop", "message": {"role": "assistant",
                                                       "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def writer_round_trip(rounds: int) -> dict[str, list[float]]:
    """Finding -> pending proposal with each writer, alternating in one run."""
    agents = (example_deployment() / "agents.yaml").read_text()
    fixed = agents.replace("timeout_s: 30", "timeout_s: 60", 1)
    good = json.dumps({"title": "Raise web_search timeout", "category": "bugfix",
                       "problem": "timeouts", "root_cause": "too short", "solution": "raise",
                       "risk": "slower failures", "diff": make_diff("agents.yaml", agents,
                                                                    fixed)})
    bad = json.dumps({"title": "t", "diff": make_diff("tests/test_policy.py", "", "x = 1\n")})
    finding = Finding("timeout_cluster", "high", "web_search", "ResearchAgent", "timeouts",
                      ("8 timeouts",), 8, {"timeouts": 8.0})
    stub = StubLLM()
    out: dict[str, list[float]] = {"rules": [], "llm": [], "llm_repaired": [], "http": []}
    provider = OpenAICompatibleProvider(LLMConfig(base_url=stub.url, model="stub",
                                                  max_retries=0))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            clock = ManualClock(NOW)
            loops = {}
            for name in ("rules", "llm", "llm_repaired"):
                rt = Runtime.init(Path(tmp) / name, clock=clock)
                loop = attach(rt, notifier=RecordingNotifier())
                loop.writer = RuleWriter() if name == "rules" else LLMWriter(
                    provider, WriterSettings(max_attempts=2), store_blob=rt.blobs.put)
                loops[name] = loop
            for _ in range(rounds):
                for name, loop in loops.items():
                    stub.answers = {"rules": [], "llm": [good],
                                    "llm_repaired": [bad, good]}[name]
                    holder: dict[str, Any] = {}
                    out[name].append(timed(functools.partial(
                        lambda lp, h: h.setdefault("r", lp.propose_report([finding])),
                        loop, holder)))
                    (outcome,) = holder["r"].outcomes
                    loop.reject(outcome.proposal.id, "bench")
                    loop.reset()
                stub.answers = [good]
                out["http"].append(timed(functools.partial(
                    provider.chat, [{"role": "user", "content": "x"}])))
                clock.advance(minutes=1)
            for loop in loops.values():
                loop.rt.close()
    finally:
        stub.close()
    return out


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

    writers = writer_round_trip(args.rounds)
    med = {k: statistics.median(v) for k, v in writers.items()}
    rows = [
        ("policy tests (one agents.yaml diff)", f"{policy_rate:,.0f} checks/s"),
        ("planner (finding -> draft + diff)", f"{planner_rate:,.0f} drafts/s"),
        ("submit: branch + validation + policy + ledger", f"{statistics.median(submit_ms):.0f} ms (median)"),
        ("approve: gates again + merge into main", f"{statistics.median(approve_ms):.0f} ms (median)"),
        ("blocked proposal (forbidden path)", f"{statistics.median(blocked_ms):.0f} ms (median)"),
        ("finding -> proposal, rule templates (baseline)", f"{med['rules']:.0f} ms (median)"),
        ("finding -> proposal, LLM writer, 1 attempt", f"{med['llm']:.0f} ms (median), "
         f"{med['llm'] / med['rules']:.2f}x the templates"),
        ("finding -> proposal, LLM writer, repaired (2 attempts)",
         f"{med['llm_repaired']:.0f} ms (median), {med['llm_repaired'] / med['rules']:.2f}x"),
        ("  floor: one HTTP chat round trip to the local server", f"{med['http']:.1f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    result = {"machine": machine(), "rounds": args.rounds, "policy_checks_per_s": policy_rate,
              "planner_drafts_per_s": planner_rate, "submit_ms": submit_ms,
              "approve_ms": approve_ms, "blocked_ms": blocked_ms,
              "finding_to_proposal_ms": writers}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
