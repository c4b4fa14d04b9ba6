"""Shared helpers for the improvement-loop tests: a driven clock, events, a loop."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
from ouroboros.capabilities.improve.proposals.notify import RecordingNotifier
from ouroboros.capabilities.improve.proposals.planner import Draft
from ouroboros.kernel import ManualClock, Runtime

T0 = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


class Clock(ManualClock):
    """The kernel's manual clock, callable for brevity in tests."""

    def __call__(self) -> datetime:
        return self.now()


def tool_events(
    start: datetime, hours: float, fail: dict[str, float], seed: int = 7, per_hour: int = 120,
    source: str = "local",
) -> list[dict[str, Any]]:
    """Tool calls spread over ``hours``; ``fail[tool]`` is that tool's timeout rate; stamped
    with ``source`` as the store stamps them (``local``: the runtime's own)."""
    rng = random.Random(seed)
    tools = ["web_search", "run_python", "db_query"]
    out = []
    for i in range(int(hours * per_hour)):
        at = start + timedelta(seconds=3600 * i / per_hour)
        tool = tools[i % len(tools)]
        failed = rng.random() < fail.get(tool, 0.0)
        out.append({
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "event_type": "tool_call",
            "agent": {"web_search": "ResearchAgent", "run_python": "CodeAgent"}.get(tool, "OpsAgent"),
            "tool": tool,
            "success": not failed,
            "error_code": "TIMEOUT" if failed else None,
            "error_message": "Request timed out after 30s" if failed else None,
            "latency_ms": 10000 if failed else 700 + rng.randint(0, 300),
            "session_id": f"s{i % 40}",
            "source": source,
        })
    return out


class Harness:
    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.clock = Clock(T0 + timedelta(hours=24))
        self.events: list[dict[str, Any]] = []
        self.notifier = RecordingNotifier()
        home = tmp / "ws"
        self.rt = Runtime.open(home, clock=self.clock) if home.exists() else \
            Runtime.init(home, clock=self.clock)
        self.loop = ImproveLoop(self.rt, events=lambda since, until: self.events, notifier=self.notifier, **kw)
        self.governance = self.loop.governance

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        self.events.extend(events)

    def main_file(self, path: str) -> str | None:
        return self.loop.repo.read("main", path)

    def draft(self, edits: dict[str, str | None], key: str = "manual", title: str = "Manual change",
              category: str = "bugfix", severity: str = "medium") -> Draft:
        """A hand-written draft whose diff sets each path to the given text (None: delete)."""
        diff = ""
        for path, new in edits.items():
            old = self.main_file(path)
            if new is None:
                assert old is not None
                diff += make_diff(path, old, "").replace(f"+++ b/{path}", "+++ /dev/null").replace(
                    f"diff --git a/{path} b/{path}\n", f"diff --git a/{path} b/{path}\ndeleted file mode 100644\n")
            elif old is None:
                body = make_diff(path, "", new).replace(f"--- a/{path}", "--- /dev/null")
                diff += body.replace(f"diff --git a/{path} b/{path}\n",
                                     f"diff --git a/{path} b/{path}\nnew file mode 100644\n")
            else:
                diff += make_diff(path, old, new)
        return self.raw_draft(diff, tuple(edits), key, title, category, severity)

    @staticmethod
    def raw_draft(diff: str, files: tuple[str, ...] = ("agents.yaml",), key: str = "manual",
                  title: str = "Manual change", category: str = "bugfix",
                  severity: str = "medium") -> Draft:
        return Draft(key=key, title=title, category=category, severity=severity,
                     problem="A problem.", evidence=("evidence",), root_cause="A cause.",
                     solution="A solution.", diff=diff, affected_files=files, risk="Low.")
