"""Crash safety and concurrency of the telemetry store, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ouroboros.capabilities.improve.intake.store import ReadStats, TelemetryStore

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)

WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta
from ouroboros.capabilities.improve.intake.store import TelemetryStore
now = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
store = TelemetryStore(sys.argv[1], clock=lambda: now)
tag, batches = sys.argv[2], int(sys.argv[3])
for b in range(batches):
    store.append([
        {"timestamp": "2026-01-10T01:00:00.000Z", "event_type": "tool_call", "tool": f"{tag}-{b}-{i}",
         "success": True, "error_message": "x" * 300}
        for i in range(200)
    ])
    if b == 0:
        print("started", flush=True)
"""


def writer(home: Path, tag: str, batches: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(home), tag, str(batches)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    procs = [writer(tmp_path, tag, 10) for tag in ("a", "b", "c")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    stats = ReadStats()
    tools = [e["tool"] for e in TelemetryStore(tmp_path, clock=lambda: NOW).events(stats=stats)]
    assert (stats.partial, stats.corrupt) == (0, 0)
    assert len(tools) == len(set(tools)) == 3 * 10 * 200


def test_a_writer_killed_mid_stream_leaves_only_whole_events(tmp_path: Path) -> None:
    proc = writer(tmp_path, "k", 100_000)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = TelemetryStore(tmp_path, clock=lambda: NOW)
    stats = ReadStats()
    before = list(store.events(stats=stats))
    assert before and stats.corrupt == 0 and stats.partial <= 1
    assert all(e["error_message"] == "x" * 300 for e in before)
    store.append([{"timestamp": "2026-01-10T01:30:00.000Z", "event_type": "tool_call", "tool": "after",
                   "success": True}])  # fmt: skip
    stats = ReadStats()
    after = list(store.events(stats=stats))
    assert after[-1]["tool"] == "after" and len(after) == len(before) + 1
    assert stats.partial == 0 and stats.corrupt <= 1  # a torn line, if any, is sealed and skipped
