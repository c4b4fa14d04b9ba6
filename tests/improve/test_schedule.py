"""The one scheduler (`capabilities/improve/schedule.py`): schedule syntax, catch-up once
after downtime, records, failures recorded and never raised, no job run twice at once,
shutdown waiting, and the loop's jobs on a real loop. ``ouro serve`` runs it in
tests/serve/test_schedule.py; ``ouro improve run`` in test_improve_cli.py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.improve.intake.runtime import store_for
from ouroboros.capabilities.improve.registrar import _LOOPS
from ouroboros.capabilities.improve.schedule import (
    JOBS,
    Job,
    JobRecords,
    Scheduler,
    first_run,
    next_fire,
    parse_schedule,
    register_job,
)
from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.settings import Settings, SettingsError, parse_toml, validate

from .loopkit import T0, Clock, Harness

T = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def toml(text: str) -> Settings:
    source = parse_toml(text, "ouro.toml")
    assert source is not None
    return validate([source]).settings


class Host:
    def __init__(self, home: Path, settings: Settings | None = None, rt: Any = None) -> None:
        self.home = home
        self.settings = settings or Settings()
        self.rt = rt
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def runtime(self) -> Iterator[Any]:
        with self.lock:
            yield self.rt

    def telemetry(self) -> Any:
        return store_for(self.rt) if self.rt is not None else None


# -- syntax -----------------------------------------------------------------------------
def test_schedule_forms_of_settings_and_flags_are_one_syntax() -> None:
    assert parse_schedule("30s").interval == 30
    assert parse_schedule("5m").interval == parse_schedule("every 5m").interval == 300
    assert parse_schedule("every 2h").interval == 7200
    assert parse_schedule("1d").interval == 86400
    assert parse_schedule("*/5 * * * *").cron == "*/5 * * * *"
    assert parse_schedule("@daily").cron == "0 9 * * *"
    assert parse_schedule("0 9 * * 1-5").cron == "0 9 * * mon-fri"  # cron's 0 = Sunday
    assert parse_schedule("off").off and parse_schedule(" OFF ").off
    for bad in ("", "5", "5x", "-1m", "0s", "every hour", "every 0m", "61 * * * *",
                "* * * *", "1" * 20 + "s", "@yearly", "every 5m; rm -rf /", "5m\n0 * * * *",
                "\u0665m"):  # an Arabic-Indic digit is no number here
        with pytest.raises(UsageError):
            parse_schedule(bad)
    # ouro.toml takes the same forms, and refuses the same garbage with its key
    assert toml('[schedules]\ntick = "30s"\nscan = "0 6 * * 0"\n').schedules.tick == "30s"
    with pytest.raises(SettingsError) as e:
        toml('[schedules]\nnotify = "sometimes"\n')
    assert e.value.problems[0].key == "schedules.notify"


def test_next_fire_and_catch_up_once() -> None:
    hourly = parse_schedule("1h")
    assert first_run(hourly, None, T) == T  # never ran: now
    assert first_run(hourly, T - timedelta(minutes=10), T) == T + timedelta(minutes=50)
    assert first_run(hourly, T - timedelta(hours=2), T) == T  # missed one: now
    assert first_run(hourly, T - timedelta(days=30), T) == T  # missed 720: still once, now
    assert first_run(parse_schedule("off"), None, T) is None
    cron = parse_schedule("0 * * * *")
    assert next_fire(cron, T) == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert next_fire(cron, datetime(2026, 3, 1, 13, 0, tzinfo=UTC)) == datetime(
        2026, 3, 1, 14, 0, tzinfo=UTC)  # strictly after
    assert first_run(cron, datetime(2026, 3, 1, 11, 59, tzinfo=UTC), T) == T
    assert first_run(cron, datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC), T) == datetime(
        2026, 3, 1, 13, 0, tzinfo=UTC)
    monday = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    assert next_fire(parse_schedule("@weekly"), monday) == datetime(2026, 1, 12, 6, 0,
                                                                   tzinfo=UTC)
    friday = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)
    assert next_fire(parse_schedule("0 9 * * 1-5"), friday) == datetime(2026, 1, 12, 9, 0,
                                                                       tzinfo=UTC)
    assert next_fire(parse_schedule("0 9 * * 0"), friday) == datetime(2026, 1, 11, 9, 0,
                                                                     tzinfo=UTC)


# -- runs -------------------------------------------------------------------------------
def test_run_due_runs_once_per_slot_and_catches_up_once_after_a_week(tmp_path: Path) -> None:
    clock = Clock(T0)
    ran: list[datetime] = []

    def hourly(_: Any) -> str:
        ran.append(clock())
        return "ran"

    jobs = {"hourly": Job("hourly", hourly, "@hourly", "x")}
    s = Scheduler(Host(tmp_path), jobs=jobs, clock=clock)
    assert [r["name"] for r in s.run_due()] == ["hourly"]  # never ran: due now
    assert s.run_due() == []
    clock.advance(minutes=59)
    assert s.run_due() == []
    clock.advance(minutes=1)
    assert len(s.run_due()) == 1
    clock.advance(days=7)  # down for a week: one catch-up run, not 168
    s2 = Scheduler(Host(tmp_path), jobs=jobs, clock=clock)  # a new process reads it back
    assert len(s2.run_due()) == 1 and s2.run_due() == []
    assert len(ran) == 3
    assert JobRecords(tmp_path / "improve" / "schedule.json").read()["hourly"]["runs"] == 3


def test_a_failure_is_recorded_never_raised_and_waits_for_its_slot(tmp_path: Path) -> None:
    clock = Clock(T0)
    good: list[int] = []

    def boom(_: Any) -> str:
        raise RuntimeError("disk full")

    def ok(_: Any) -> str:
        good.append(1)
        return "did it"

    jobs = {"bad": Job("bad", boom, "every 10m", "fails"),
            "good": Job("good", ok, "every 10m", "fine")}
    heard: list[dict[str, Any]] = []

    def deaf(run: dict[str, Any]) -> None:
        heard.append(run)
        raise OSError("the host's log is broken")  # neither fails the job nor escapes

    s = Scheduler(Host(tmp_path), jobs=jobs, clock=clock, on_run=deaf)
    runs = {r["name"]: r for r in s.run_due()}
    assert runs["bad"]["ok"] is False and "disk full" in runs["bad"]["summary"]
    assert runs["good"]["ok"] is True and good == [1] and len(heard) == 2
    assert s.run_due() == []  # no hot loop on failure
    status = {j["name"]: j for j in s.status()}
    assert status["bad"]["ok"] is False and status["bad"]["summary"] == "RuntimeError: disk full"
    assert status["bad"]["next_run"] == (T0 + timedelta(minutes=10)).isoformat()
    records = JobRecords(tmp_path / "improve" / "schedule.json").read()
    assert records["bad"]["running"] is False and records["good"]["summary"] == "did it"


def test_unknown_jobs_bad_schedules_and_bad_names_are_refused(tmp_path: Path) -> None:
    jobs = {"ok": Job("ok", lambda _: "", "1h", "fine")}
    with pytest.raises(UsageError, match="unknown scheduled job"):
        Scheduler(Host(tmp_path), {"ghost": "5m"}, jobs=jobs)
    with pytest.raises(UsageError, match="whenever"):
        Scheduler(Host(tmp_path), {"ok": "whenever"}, jobs=jobs)
    for name in ("", "Tick", "../x", "a" * 40, "tick\n"):
        with pytest.raises(ValueError):
            register_job(Job(name, lambda _: "", "1h", "x"))
    with pytest.raises(UsageError):
        register_job(Job("newjob", lambda _: "", "sometimes", "x"))
    assert "newjob" not in JOBS
    assert not (tmp_path / "improve").exists()  # nothing recorded by a refused scheduler


def test_a_damaged_state_file_is_read_as_no_runs(tmp_path: Path) -> None:
    state = tmp_path / "improve" / "schedule.json"
    state.parent.mkdir()
    jobs = {"ok": Job("ok", lambda _: "fine", "1h", "x")}
    for garbage in (b"\xff\xfe", b"[1, 2]", b'{"jobs": {"ok": "yesterday"}}',
                    b'{"jobs": {"ok": {"last_run": "not a time"}}}'):
        state.write_bytes(garbage)
        s = Scheduler(Host(tmp_path), jobs=jobs, clock=lambda: T)
        assert s.due() == ["ok"]
    assert s.run_due()[0]["ok"] is True and JobRecords(state).last_run("ok") == T


def test_a_damaged_run_count_is_restarted_not_a_crash(tmp_path: Path) -> None:
    # {"runs": "x"} crashed the recording after the job had run (int("x")): `ouro improve
    # run --once` ended in "unexpected error: ValueError" and the later jobs never ran
    state = tmp_path / "improve" / "schedule.json"
    state.parent.mkdir()
    jobs = {"ok": Job("ok", lambda _: "fine", "1h", "x")}
    for runs in ('"x"', "[1]", "{}", "1.5", "true", "null", "-3"):
        state.write_text(f'{{"version": 1, "jobs": {{"ok": {{"runs": {runs}}}}}}}')
        (result,) = Scheduler(Host(tmp_path), jobs=jobs, clock=lambda: T).run_due()
        assert result["ok"] is True
        assert JobRecords(state).read()["ok"]["runs"] == 1
    Scheduler(Host(tmp_path), jobs=jobs, clock=lambda: T + timedelta(hours=1)).run_due()
    assert JobRecords(state).read()["ok"]["runs"] == 2


def test_settings_choose_schedules_and_flags_override_them(tmp_path: Path) -> None:
    settings = toml('[schedules]\ntick = "off"\nevaluate = "every 2h"\n')
    s = Scheduler(Host(tmp_path, settings), {"evaluate": "@daily"})
    assert {"extract", "evaluate", "tick", "scan", "notify"} <= set(s.jobs)
    assert s.schedules["tick"].off and s.schedules["evaluate"].spec == "@daily"
    assert s.schedules["notify"].interval == 60 and s.schedules["scan"].spec == "@weekly"
    assert "tick" not in s.due(T)


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


# -- the loop's jobs --------------------------------------------------------------------
def test_the_loops_jobs_are_registered_with_the_settings_defaults() -> None:
    defaults = Settings().schedules.model_dump()
    for name in ("extract", "evaluate", "tick", "scan", "notify"):
        assert JOBS[name].default == defaults[name] and JOBS[name].description
        assert not parse_schedule(JOBS[name].default).off


def test_the_loops_jobs_run_on_a_real_loop(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    _LOOPS[h.rt] = h.loop  # as `ouro improve run` attaches its loop
    assert h.rt.propose_and_submit(type="routing", target="agents/a/routing", value={"x": 1},
                                   reasoning="r", author="tuner").status == "applied"
    s = Scheduler(Host(h.rt.home, rt=h.rt), clock=h.clock)
    runs = {r["name"]: r for r in s.run_due()}
    assert {"extract", "evaluate", "tick", "scan", "notify"} <= set(runs)
    assert all(r["ok"] for r in runs.values()), runs
    assert runs["extract"]["summary"] == "1 kernel outcome(s) recorded as spans"
    assert runs["evaluate"]["summary"].startswith("0 ledger outcome(s) collected")  # once
    assert [e["tool"] for e in store_for(h.rt).events()] == ["patch.routing"]
    assert s.run_due() == []
    h.clock.advance(minutes=5)
    assert sorted(r["name"] for r in s.run_due()) == ["extract", "notify", "tick"]
