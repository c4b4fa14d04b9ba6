"""Scheduled work: schedules, catch-up after downtime (once), records, shutdown, and the
jobs inside a real `ouro serve`."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.improve.intake import synthetic
from ouroboros.capabilities.improve.intake.collectors import ingest
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.improve.schedule import (
    JOBS,
    Job,
    JobRecords,
    Schedule,
    Scheduler,
    first_run,
    next_fire,
    parse_schedule,
)
from ouroboros.kernel.errors import UsageError

from .conftest import new_workspace
from .live import LiveServer, start

T = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def test_schedule_forms() -> None:
    assert parse_schedule("30s").interval == 30
    assert parse_schedule("5m").interval == 300
    assert parse_schedule("2h").interval == 7200
    assert parse_schedule("1d").interval == 86400
    assert parse_schedule("*/5 * * * *").cron == "*/5 * * * *"
    assert parse_schedule("off").off and parse_schedule(" OFF ").off
    for bad in ("", "5", "5x", "-1m", "0s", "every hour", "61 * * * *", "* * * *",
                "1" * 20 + "s"):
        with pytest.raises(UsageError):
            parse_schedule(bad)


def test_first_run_catches_up_once_and_otherwise_waits() -> None:
    hourly = Schedule("1h", interval=3600)
    assert first_run(hourly, None, T) == T + timedelta(hours=1)  # never ran: next regular
    assert first_run(hourly, T - timedelta(minutes=10), T) == T + timedelta(minutes=50)
    assert first_run(hourly, T - timedelta(hours=2), T) == T  # missed one: now
    assert first_run(hourly, T - timedelta(days=30), T) == T  # missed 720: still once, now
    cron = parse_schedule("0 * * * *")
    assert next_fire(cron, T) == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert next_fire(cron, datetime(2026, 3, 1, 13, 0, tzinfo=UTC)) == datetime(
        2026, 3, 1, 14, 0, tzinfo=UTC)  # strictly after
    assert first_run(cron, datetime(2026, 3, 1, 11, 59, tzinfo=UTC), T) == T
    assert first_run(cron, datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC), T) == datetime(
        2026, 3, 1, 13, 0, tzinfo=UTC)


class Host:
    def __init__(self, home: Path) -> None:
        self.home = home

    @contextlib.contextmanager
    def runtime(self) -> Iterator[Any]:
        yield None

    def telemetry(self) -> Any:
        return None


def test_runs_are_recorded_and_failures_do_not_escape(tmp_path: Path) -> None:
    calls: list[str] = []

    def ok(_: Any) -> str:
        calls.append("ok")
        return "did it"

    def boom(_: Any) -> str:
        raise RuntimeError("disk on fire")

    jobs = {"ok": Job("ok", ok, "1h", "fine"), "boom": Job("boom", boom, "1h", "fails")}
    scheduler = Scheduler(Host(tmp_path), jobs=jobs, clock=lambda: T)
    assert scheduler.run("ok")["ok"] is True
    failed = scheduler.run("boom")
    assert failed["ok"] is False and "disk on fire" in failed["summary"]
    records = JobRecords(tmp_path / "improve" / "schedule.json").read()
    assert records["ok"]["runs"] == 1 and records["ok"]["summary"] == "did it"
    assert records["boom"]["ok"] is False and records["boom"]["running"] is False
    assert JobRecords(tmp_path / "improve" / "schedule.json").last_run("ok") == T
    with pytest.raises(UsageError):
        Scheduler(Host(tmp_path), {"ghost": "5m"}, jobs=jobs)
    with pytest.raises(UsageError):
        Scheduler(Host(tmp_path), {"ok": "whenever"}, jobs=jobs)


def test_a_job_is_never_run_twice_at_once_and_shutdown_waits_for_it(tmp_path: Path) -> None:
    release, entered = threading.Event(), threading.Event()

    def slow(_: Any) -> str:
        entered.set()
        assert release.wait(30)
        return "finished"

    jobs = {"slow": Job("slow", slow, "1s", "slow")}
    records = JobRecords(tmp_path / "improve" / "schedule.json")
    with records._locked() as state:  # last ran long ago: the catch-up run starts at once
        state["slow"] = {"last_run": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    scheduler = Scheduler(Host(tmp_path), jobs=jobs)
    scheduler.start()
    assert entered.wait(30)
    assert scheduler.run("slow")["summary"] == "already running"
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive()  # waiting for the running job
    release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert records.read()["slow"]["summary"] == "finished"


def test_the_built_in_jobs_are_registered() -> None:
    assert {"tick", "notify", "eval"} <= set(JOBS)
    for job in JOBS.values():
        assert not parse_schedule(job.default).off


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
    server = start(home, "--schedule", "tick=1h", "--schedule", "notify=1h",
                   "--schedule", "eval=off")
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
        assert jobs["eval"]["next_run"] is None and jobs["eval"]["schedule"] == "off"


def test_running_eval_now_turns_findings_into_proposals(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as reader:
        assert reader.post("/api/v1/schedule/eval/run").status_code == 403
        assert reader.get("/api/v1/proposals").json() == []
    with live.client(live.token("admin", "admin", "root")) as admin:
        r = admin.post("/api/v1/schedule/eval/run")
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        assert "proposal" in r.json()["summary"]
        titles = [p["title"] for p in admin.get("/api/v1/proposals").json()]
        assert any("web_search" in t for t in titles), titles
        assert admin.post("/api/v1/schedule/ghost/run").status_code == 404
        assert admin.post("/api/v1/schedule/..%2Fx/run").status_code in (404, 422)


@pytest.mark.parametrize("args,message", [
    (["--schedule", "ghost=5m"], "unknown scheduled job"),
    (["--schedule", "tick=sometimes"], "not 30s"),
    (["--schedule", "tick"], "JOB=SPEC"),
])
def test_a_bad_schedule_stops_serve_before_it_binds(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    home = new_workspace(tmp_path / "ws")
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                        "--port", "0", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_schedule_json_is_what_status_reads(live: LiveServer) -> None:
    data = json.loads((live.home / "improve" / "schedule.json").read_text())
    assert data["jobs"]["tick"]["runs"] >= 1
