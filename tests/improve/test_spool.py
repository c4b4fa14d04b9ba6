"""Spans of lean processes (``ouro tool run``): spooled raw, stored by the next reader,
exactly once under concurrent writers, sanitized like any event (intake/spool.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.kernel import Runtime

SUM_INTS = next(d for d in starter_dirs() if d.name == "sum_ints")


def ouro(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=300)


def spool(home: Path) -> Path:
    return home / "telemetry" / "spool.jsonl"


def test_cli_tool_runs_reach_telemetry_through_the_spool(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    assert ouro(home, "tool", "add", str(SUM_INTS)).returncode == 0
    for values in ("[1, 2]", "[3, 4]", "[5]"):
        assert ouro(home, "tool", "run", "sum_ints", "--input", values).returncode == 0
    failed = ouro(home, "tool", "run", "sum_ints", "--input", "[1, 2, 3]", "--fuel", "1")
    assert failed.returncode != 0
    lines = spool(home).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["name"] == "ouro.tool.run" for x in lines)
    assert not (home / "telemetry" / "events").exists()  # raw until a reader takes it

    events = [e for e in TelemetryStore(home).events() if e["tool"] == "sum_ints"]
    assert [e["success"] for e in events] == [True, True, True, False]
    assert all(e["agent"] == "runtime" and e["latency_ms"] > 0 and len(e["span_id"]) == 16
               for e in events)
    assert events[3]["error_code"] == "FuelExhausted", events[3]
    assert events[3]["error_message"] == "failed"  # the error's text is never spooled
    assert not spool(home).exists() and not list((home / "telemetry").glob("*.draining"))
    assert [e for e in TelemetryStore(home).events() if e["tool"] == "sum_ints"] == events


def test_a_forged_or_torn_spool_is_sanitized_or_skipped(tmp_path: Path) -> None:
    """Anyone who can write the workspace can write the spool: a line is stored only as
    the event a runtime span makes, through the sanitizer; anything else is skipped."""
    home = tmp_path / "ws"
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    good = {"name": "ouro.tool.run", "start": 1_800_000_000_000_000_000,
            "end": 1_800_000_000_500_000_000, "ok": True, "trace": "ab" * 16,
            "span": "cd" * 8, "attrs": {"ouro.tool": "csv_to_json"}}
    forged = {**good, "attrs": {"ouro.tool": secret, "ouro.error": secret}, "ok": False}
    lines = [json.dumps(good), json.dumps(forged), "not json", json.dumps({"name": 1}),
             json.dumps({**good, "start": "soon"}), json.dumps({**good, "attrs": []}),
             json.dumps({**good, "name": "somebody.else"}), "x" * 10_000,
             json.dumps({**good, "trace": "ZZ" * 16}), '{"name": "ouro.tool.run", "st']
    spool(home).parent.mkdir(parents=True)
    spool(home).write_text("\n".join(lines))  # the last line torn (no newline)
    store = TelemetryStore(home)
    events = list(store.events())
    assert len(events) == 3, events  # good, forged, and the one with a bad trace id
    assert secret not in json.dumps(events)
    assert events[0]["tool"] == "csv_to_json" and events[0]["latency_ms"] == 500.0
    assert "trace_id" not in events[2]  # not hex: dropped, the event kept


def test_concurrent_writers_and_drainers_lose_and_repeat_nothing(tmp_path: Path) -> None:
    """Writers in several processes spool while readers take the spool over and over:
    every span is stored exactly once (the writer's inode check under the shared lock)."""
    home = tmp_path / "ws"
    (home / "telemetry").mkdir(parents=True)
    writer = ("import sys; from ouroboros.capabilities import tracing\n"
              "tracing.spool_to(sys.argv[1])\n"
              "for i in range(int(sys.argv[3])):\n"
              "    with tracing.span('t', 'ouro.tool.run', {'ouro.tool': sys.argv[2]}):\n"
              "        pass\n")
    writers, per_writer = 4, 5000
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(home), f"tool{w}",
                               str(per_writer)]) for w in range(writers)]
    drainer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from ouroboros.capabilities.improve.intake.store import TelemetryStore\n"
        "end = time.time() + 60\n"
        "while time.time() < end and not (open(sys.argv[2]).read() == 'done'):\n"
        "    sum(1 for _ in TelemetryStore(sys.argv[1]).events())\n"),
        str(home), str(tmp_path / "flag")])
    (tmp_path / "flag").write_text("")
    draining_reads = 0
    while any(p.poll() is None for p in procs):
        draining_reads += 1
        sum(1 for _ in TelemetryStore(home).events())
    (tmp_path / "flag").write_text("done")
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert drainer.wait(timeout=120) == 0
    events = list(TelemetryStore(home).events())
    counts = {f"tool{w}": 0 for w in range(writers)}
    for e in events:
        counts[e["tool"]] += 1
    assert counts == {f"tool{w}": per_writer for w in range(writers)}, counts
    assert len({e["span_id"] for e in events}) == writers * per_writer
    assert draining_reads > 1


def test_a_spool_taken_by_a_drainer_that_died_is_stored_by_the_next(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    folder = home / "telemetry"
    folder.mkdir(parents=True)
    record = {"name": "ouro.solve", "start": 1_800_000_000_000_000_000,
              "end": 1_800_000_001_000_000_000, "ok": False, "trace": "01" * 16,
              "span": "02" * 8, "attrs": {"ouro.error_code": "UNSOLVED"}}
    (folder / "spool.17.draining").write_text(json.dumps(record) + "\n")
    events = list(TelemetryStore(home).events())
    assert [(e["tool"], e["success"], e["error_code"]) for e in events] == [
        ("solve", False, "UNSOLVED")]
    assert not list(folder.glob("*.draining"))
