"""Scheduled work inside a real `ouro serve`: catch-up after downtime (once), schedules
from ouro.toml and --schedule, running a job now over the API, bad schedules refused
before the server binds. The scheduler itself: tests/improve/test_schedule.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.improve.intake import synthetic
from ouroboros.capabilities.improve.intake.collectors import ingest
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.improve.schedule import JobRecords

from .conftest import new_workspace
from .live import LiveServer, start


# -- inside ouro serve ----------------------------------------------------------------
def poll(check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("schedule")
    home = new_workspace(tmp / "ws")
    now = datetime.now(UTC)
    events = tmp / "events.jsonl"
    synthetic.write_jsonl(synthetic.generate(
        now - timedelta(days=2), now, events_per_hour=200, seed=5,
        faults=[synthetic.Timeouts(start=now - timedelta(hours=6), end=now, rate=0.7)]), events)
    ingest([events], TelemetryStore(home))
    records = JobRecords(home / "improve" / "schedule.json")
    with records._locked() as state:  # down for two hours: tick missed one hourly run
        state["tick"] = {"last_run": (now - timedelta(hours=2)).isoformat()}
        state["notify"] = {"last_run": (now - timedelta(minutes=10)).isoformat()}
    # from ouro.toml: scan off, notify hourly; the flags override tick and evaluate
    (home / "ouro.toml").write_text('[schedules]\nscan = "off"\nnotify = "every 1h"\n'
                                    'tick = "@daily"\n')
    server = start(home, "--schedule", "tick=1h", "--schedule", "evaluate=off")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def test_a_missed_run_is_caught_up_once_at_start(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as c:
        def tick() -> dict[str, Any] | None:
            jobs = {j["name"]: j for j in c.get("/api/v1/schedule").json()}
            return jobs["tick"] if jobs["tick"]["runs"] else None

        done = poll(tick)
        assert done["ok"] is True and done["runs"] == 1
        nxt = datetime.fromisoformat(done["next_run"])
        assert nxt > datetime.now(UTC) + timedelta(minutes=55)  # then hourly, not again now
        jobs = {j["name"]: j for j in c.get("/api/v1/schedule").json()}
        assert jobs["notify"]["runs"] is None  # ran 10 min ago: waits for its hour
        assert datetime.fromisoformat(jobs["notify"]["next_run"]) < datetime.now(UTC) + \
            timedelta(minutes=51)
        assert jobs["evaluate"]["next_run"] is None and jobs["evaluate"]["schedule"] == "off"
        assert jobs["scan"]["next_run"] is None and jobs["notify"]["schedule"] == "every 1h"
        assert jobs["tick"]["schedule"] == "1h"  # the flag over the file
        # extract never ran in this workspace: it ran at start, then every 5 minutes
        extract = poll(lambda: (j := {x["name"]: x for x in c.get(
            "/api/v1/schedule").json()}["extract"])["runs"] and j)
        assert extract["ok"] is True and "recorded as spans" in extract["summary"]


def test_running_eval_now_turns_findings_into_proposals(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as reader:
        assert reader.post("/api/v1/schedule/evaluate/run").status_code == 403
        assert reader.get("/api/v1/proposals").json() == []
    with live.client(live.token("admin", "admin", "root")) as admin:
        r = admin.post("/api/v1/schedule/evaluate/run")
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        assert "proposal" in r.json()["summary"]
        titles = [p["title"] for p in admin.get("/api/v1/proposals").json()]
        assert any("web_search" in t for t in titles), titles
        assert admin.post("/api/v1/schedule/ghost/run").status_code == 404
        assert admin.post("/api/v1/schedule/..%2Fx/run").status_code in (404, 422)


@pytest.mark.parametrize("args,message", [
    (["--schedule", "ghost=5m"], "unknown scheduled job"),
    (["--schedule", "tick=sometimes"], "is not a schedule"),
    (["--schedule", "tick=every 5m; rm -rf /"], "is not a valid cron expression"),
    (["--schedule", "tick"], "JOB=SPEC"),
])
def test_a_bad_schedule_stops_serve_before_it_binds(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    home = new_workspace(tmp_path / "ws")
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                        "--port", "0", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_schedule_in_ouro_toml_stops_serve_with_its_key(tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    (home / "ouro.toml").write_text('[schedules]\nnotify = "sometimes"\n')
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                        "--port", "0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "schedules.notify" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "listening" not in r.stdout


def test_schedule_json_is_what_status_reads(live: LiveServer) -> None:
    data = json.loads((live.home / "improve" / "schedule.json").read_text())
    assert data["jobs"]["tick"]["runs"] >= 1
