"""Scheduled work: the loop's periodic jobs on APScheduler, caught up once after downtime.

One registry and one scheduler for every host: ``ouro serve`` runs it in the server
(`interfaces/http/jobs.py`, ``/api/v1/schedule``), ``ouro improve run`` alone (``--once``
for cron). A host gives a `JobHost` (its home, settings, a runtime, the telemetry store);
`Scheduler` does the rest.

- **Registry**: `JOBS` maps names to `Job` (a function of the host, a default schedule);
  `register_job` adds one. The loop's jobs (`.jobs`: extract, evaluate, tick, scan,
  notify) register on import of this module; nothing is hard-wired to them.
- **Schedules**: ``[schedules]`` in ``ouro.toml`` (`Settings.schedules`), overridden per
  host (``ouro serve --schedule JOB=SPEC``); a job the settings do not name keeps its
  default. The syntax is the settings' (`ouroboros.kernel.settings.check_schedule`):
  ``every 5m`` or ``5m``, ``@hourly|@daily|@weekly|@monthly``, five cron fields (UTC,
  0 = Sunday), or ``off``.
- **Catch-up**: each job's last start is persisted in ``<home>/improve/schedule.json``.
  A job that never ran, or whose schedule fired at least once since its last start,
  runs once, now (however many runs were missed); otherwise at its next regular time
  (`first_run`).
- **Failures and shutdown**: a job's failure is recorded (``ok: false``, the error),
  never raised, and the job waits for its next time; shutdown waits for a running job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.settings import check_schedule, crontab_of, interval_seconds
from ouroboros.storage.files import flocked, read_json_file, replace_file

#: The most of ``schedule.json`` read: a few hundred bytes a job, a handful of jobs.
MAX_RECORDS = 16 << 20

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.base import BaseTrigger

    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.kernel import Runtime
    from ouroboros.kernel.settings import Settings

log = logging.getLogger("ouroboros.schedule")
STATE_FILE = "schedule.json"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class JobHost(Protocol):
    """What a job may use from the process that runs it."""

    home: Path
    settings: Settings

    def runtime(self) -> contextlib.AbstractContextManager[Runtime]:
        """A runtime for the job's duration (the host serialises the loop's writers)."""
        ...

    def telemetry(self) -> TelemetryStore: ...


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobHost], str]  # returns a one-line summary of what it did
    default: str  # schedule spec
    description: str


JOBS: dict[str, Job] = {}


def register_job(job: Job) -> None:
    """Add (or replace) a job in the registry.

    Raises:
        ValueError: a malformed name; UsageError: a malformed default schedule.
    """
    if not _NAME.fullmatch(job.name):  # fullmatch: "$" would let "tick\n" through
        raise ValueError(f"invalid job name {job.name!r}")
    parse_schedule(job.default)
    JOBS[job.name] = job


# -- schedules (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """``interval`` seconds, or a ``cron`` line (APScheduler's day names); neither is off."""

    spec: str
    interval: int | None = None
    cron: str | None = None

    @property
    def off(self) -> bool:
        return self.interval is None and self.cron is None


def parse_schedule(spec: str) -> Schedule:
    """``every 5m`` / ``5m``, ``@hourly|@daily|@weekly|@monthly``, five cron fields, or ``off``.

    Raises:
        UsageError: anything else (the message shows the forms).
    """
    try:
        text = check_schedule(spec)
    except ValueError as e:
        raise UsageError(f"schedule {spec!r}: {e}",
                         "e.g. --schedule tick=5m or --schedule evaluate='0 * * * *'") from None
    if text == "off":
        return Schedule("off")
    seconds = interval_seconds(text)
    if seconds is not None:
        return Schedule(text, interval=seconds)
    return Schedule(text, cron=crontab_of(text))


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The schedule's first time strictly after ``after`` (None: off)."""
    if schedule.interval is not None:
        return after + timedelta(seconds=schedule.interval)
    if schedule.cron is None:
        return None
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    return fire.astimezone(UTC) if fire else None


def first_run(schedule: Schedule, last_run: datetime | None, now: datetime) -> datetime | None:
    """When a job should first run in this process: ``now`` when it never ran or its
    schedule fired since its last run (one catch-up for any number of missed runs), else
    its next regular time; None when it is off."""
    if schedule.off:
        return None
    if last_run is None:
        return now
    due = next_fire(schedule, last_run)
    return None if due is None else (now if due <= now else due)


# -- persisted state ----------------------------------------------------------------------
class JobRecords:
    """``schedule.json``: per job, the last start, end, outcome and summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[str, dict[str, Any]]:
        try:  # a few KiB; a link, FIFO, huge or torn file is not the runtime's: start over
            data = read_json_file(self.path, MAX_RECORDS)
        except OSError:
            return {}
        jobs = data.get("jobs") if isinstance(data, dict) else None
        return {k: v for k, v in jobs.items() if isinstance(v, dict)} \
            if isinstance(jobs, dict) else {}

    def last_run(self, name: str) -> datetime | None:
        entry = self.read().get(name) or {}
        try:
            at = datetime.fromisoformat(entry["last_run"])
        except (KeyError, TypeError, ValueError):
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, flocked(self.path.with_suffix(".lock"), mode=0o644):
            jobs = self.read()
            yield jobs
            replace_file(self.path, json.dumps({"version": 1, "jobs": jobs}, indent=2,
                                               sort_keys=True))

    def started(self, name: str, at: datetime) -> None:
        with self._locked() as jobs:
            entry = jobs.setdefault(name, {})
            entry["last_run"] = at.isoformat()
            entry["running"] = True

    def finished(self, name: str, at: datetime, ok: bool, summary: str, ms: float) -> None:
        with self._locked() as jobs:
            entry = jobs.setdefault(name, {})
            runs = entry.get("runs")  # a damaged count starts again rather than crash
            runs = runs if isinstance(runs, int) and not isinstance(runs, bool) and runs > 0 else 0
            entry.update({"finished": at.isoformat(), "ok": ok, "summary": summary[:500],
                          "duration_ms": round(ms, 1), "running": False, "runs": runs + 1})


def schedules_of(settings: Settings, jobs: Mapping[str, Job],
                 overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each job's schedule: ``overrides`` (a host's flags), else ``[schedules]`` of the
    settings, else the job's default."""
    configured = settings.schedules.model_dump()
    return {name: (overrides or {}).get(name, configured.get(name, job.default))
            for name, job in jobs.items()}


# -- the scheduler ------------------------------------------------------------------------
class Scheduler:
    """The jobs of `JOBS` (or ``jobs``) on their schedules, in background threads
    (`start`), or what is due now in this thread (`run_due`)."""

    def __init__(self, host: JobHost, schedules: Mapping[str, str] | None = None, *,
                 jobs: Mapping[str, Job] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_run: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``schedules`` overrides the host's ``[schedules]`` settings and job defaults
        by name; ``on_run`` hears of every finished run (a host's log).

        Raises:
            UsageError: a schedule names an unknown job or is malformed.
        """
        self.host = host
        self.jobs = dict(jobs if jobs is not None else JOBS)
        unknown = sorted(set(schedules or {}) - set(self.jobs))
        if unknown:
            raise UsageError(f"unknown scheduled job {unknown[0]!r}",
                             f"jobs: {', '.join(sorted(self.jobs))}")
        specs = schedules_of(host.settings, self.jobs, schedules)
        self.schedules = {name: parse_schedule(spec) for name, spec in specs.items()}
        self.records = JobRecords(Path(host.home) / "improve" / STATE_FILE)
        self.clock = clock
        self.on_run = on_run
        self._scheduler: BackgroundScheduler | None = None
        self._running: set[str] = set()
        self._guard = threading.Lock()

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        now = self.clock()
        for name, schedule in self.schedules.items():
            first = first_run(schedule, self.records.last_run(name), now)
            if first is None:
                continue
            scheduler.add_job(self.run, trigger=self._trigger(schedule, first), args=[name],
                              id=name, name=name, next_run_time=first)
        scheduler.start()
        self._scheduler = scheduler

    @staticmethod
    def _trigger(schedule: Schedule, first: datetime) -> BaseTrigger:
        if schedule.interval is not None:
            from apscheduler.triggers.interval import IntervalTrigger

            return IntervalTrigger(seconds=schedule.interval, start_date=first, timezone=UTC)
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(str(schedule.cron), timezone=UTC)

    def due(self, now: datetime | None = None) -> list[str]:
        """The jobs due at ``now``: never ran, or their schedule fired since their last run."""
        now = now or self.clock()
        return [name for name, schedule in self.schedules.items()
                if (at := first_run(schedule, self.records.last_run(name), now)) is not None
                and at <= now]

    def run_due(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Run each due job once, here, in registry order (``ouro improve run --once``)."""
        return [self.run(name) for name in self.due(now)]

    def run(self, name: str) -> dict[str, Any]:
        """Run one job now, in this thread (the scheduler's or a caller's); a second run of
        a job that is running is refused, not queued. Returns its record."""
        job = self.jobs[name]
        with self._guard:
            if name in self._running:
                return {"name": name, "ok": False, "summary": "already running"}
            self._running.add(name)
        started, t0 = self.clock(), time.perf_counter()
        try:
            self.records.started(name, started)
            try:
                summary, ok = job.run(self.host), True
            except Exception as e:  # a job's failure is recorded, never kills the scheduler
                log.warning("scheduled job %s failed: %s: %s", name, type(e).__name__, e)
                log.debug("scheduled job %s failed", name, exc_info=True)
                summary, ok = f"{type(e).__name__}: {e}", False
            self.records.finished(name, self.clock(), ok, summary,
                                  (time.perf_counter() - t0) * 1000)
        finally:
            with self._guard:
                self._running.discard(name)
        result = {"name": name, "ok": ok, "summary": summary[:500],
                  "started": started.isoformat()}
        if self.on_run is not None:
            with contextlib.suppress(Exception):  # a host's log never fails a job
                self.on_run(result)
        return result

    def status(self) -> list[dict[str, Any]]:
        """Every job: schedule, next run, and what its last run did."""
        records = self.records.read()
        now = self.clock()
        out = []
        for name, job in sorted(self.jobs.items()):
            nxt: datetime | None = None
            if self._scheduler is not None:
                aps = self._scheduler.get_job(name)
                nxt = aps.next_run_time if aps is not None else None
            else:
                nxt = first_run(self.schedules[name], self.records.last_run(name), now)
            out.append({"name": name, "description": job.description,
                        "schedule": self.schedules[name].spec,
                        "next_run": nxt.isoformat() if nxt else None,
                        **{k: records.get(name, {}).get(k) for k in (
                            "last_run", "finished", "ok", "summary", "duration_ms", "runs")}})
        return out

    def shutdown(self) -> None:
        """Stop scheduling; wait for a job that is running."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


# The loop's own jobs register themselves; last, because they import `Job` from here.
from ouroboros.capabilities.improve import jobs as _jobs  # noqa: E402, F401
