"""Scheduled work: the loop's periodic jobs on APScheduler, caught up once after downtime.

What cron did for the improvement loop (``ouro proposals tick``, notifications,
``ouro telemetry eval --propose``) runs here on schedules, inside ``ouro serve`` today and
in any other long-running host tomorrow (``ouro improve run``): a host gives a
`JobHost` (how to get a runtime and the telemetry store) and the schedules; `Scheduler`
does the rest.

- **Registry**: `JOBS` maps names to `Job` (a function of the host, a default schedule);
  `register_job` adds one (scan, extraction, digest jobs go here). Nothing is hard-wired
  to the three built-in jobs.
- **Schedules**: ``30s``, ``5m``, ``1h``, ``1d`` intervals, a five-field cron line
  (UTC), or ``off`` (`parse_schedule`).
- **Catch-up**: each job's last start is persisted in ``<home>/improve/schedule.json``.
  At start, a job whose schedule fired at least once while nothing ran runs once, now
  (however many runs were missed); otherwise it runs at its next regular time (`first_run`).
- **Shutdown** waits for a running job; a job's failure is recorded, never raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouroboros.kernel.errors import UsageError

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.base import BaseTrigger

    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.kernel import Runtime

log = logging.getLogger("ouroboros.schedule")
STATE_FILE = "schedule.json"
_INTERVAL = re.compile(r"^(\d{1,7})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class JobHost(Protocol):
    """What a job may use from the process that runs it."""

    home: Path

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
    """Add (or replace) a job in the registry."""
    if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", job.name):
        raise ValueError(f"invalid job name {job.name!r}")
    parse_schedule(job.default)
    JOBS[job.name] = job


# -- schedules (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """``interval`` seconds, or a ``cron`` line; neither means off."""

    spec: str
    interval: int | None = None
    cron: str | None = None

    @property
    def off(self) -> bool:
        return self.interval is None and self.cron is None


def parse_schedule(spec: str) -> Schedule:
    """``30s`` / ``5m`` / ``1h`` / ``1d``, a five-field cron line, or ``off``.

    Raises:
        UsageError: anything else (the message shows the forms).
    """
    text = spec.strip()
    if text.lower() == "off":
        return Schedule("off")
    match = _INTERVAL.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 1:
            raise UsageError(f"schedule {spec!r}: an interval must be at least 1s")
        return Schedule(text, interval=seconds)
    if len(text.split()) == 5:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(text, timezone=UTC)
        except ValueError as e:
            raise UsageError(f"schedule {spec!r} is not a valid cron line: {e}") from None
        return Schedule(text, cron=text)
    raise UsageError(f"schedule {spec!r} is not 30s / 5m / 1h / 1d, a cron line, or off",
                     "e.g. --schedule tick=5m or --schedule eval='0 * * * *'")


def next_fire(schedule: Schedule, after: datetime) -> datetime:
    """The schedule's first time strictly after ``after``."""
    if schedule.interval is not None:
        return after + timedelta(seconds=schedule.interval)
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(str(schedule.cron), timezone=UTC)
    fire: datetime = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    return fire


def first_run(schedule: Schedule, last_run: datetime | None, now: datetime) -> datetime:
    """When a job should first run in this process: ``now`` when its schedule fired since
    its last run (one catch-up for any number of missed runs), else its next regular time."""
    if last_run is None:
        return next_fire(schedule, now)
    due = next_fire(schedule, last_run)
    return now if due <= now else due


# -- persisted state ----------------------------------------------------------------------
class JobRecords:
    """``schedule.json``: per job, the last start, end, outcome and summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        jobs = data.get("jobs") if isinstance(data, dict) else None
        return jobs if isinstance(jobs, dict) else {}

    def last_run(self, name: str) -> datetime | None:
        entry = self.read().get(name) or {}
        try:
            return datetime.fromisoformat(entry["last_run"])
        except (KeyError, TypeError, ValueError):
            return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            jobs = self.read()
            yield jobs
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": 1, "jobs": jobs}, indent=2, sort_keys=True))
            os.replace(tmp, self.path)

    def started(self, name: str, at: datetime) -> None:
        with self._locked() as jobs:
            entry = jobs.setdefault(name, {})
            entry["last_run"] = at.isoformat()
            entry["running"] = True

    def finished(self, name: str, at: datetime, ok: bool, summary: str, ms: float) -> None:
        with self._locked() as jobs:
            entry = jobs.setdefault(name, {})
            entry.update({"finished": at.isoformat(), "ok": ok, "summary": summary[:500],
                          "duration_ms": round(ms, 1), "running": False,
                          "runs": int(entry.get("runs", 0)) + 1})


# -- the scheduler ------------------------------------------------------------------------
class Scheduler:
    """The jobs of `JOBS` (or ``jobs``) on their schedules, in background threads."""

    def __init__(self, host: JobHost, schedules: Mapping[str, str] | None = None, *,
                 jobs: Mapping[str, Job] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``schedules`` overrides job defaults by name.

        Raises:
            UsageError: a schedule names an unknown job or is malformed.
        """
        self.host = host
        self.jobs = dict(jobs if jobs is not None else JOBS)
        unknown = sorted(set(schedules or {}) - set(self.jobs))
        if unknown:
            raise UsageError(f"unknown scheduled job {unknown[0]!r}",
                             f"jobs: {', '.join(sorted(self.jobs))}")
        self.schedules = {name: parse_schedule((schedules or {}).get(name, job.default))
                          for name, job in self.jobs.items()}
        self.records = JobRecords(Path(host.home) / "improve" / STATE_FILE)
        self.clock = clock
        self._scheduler: BackgroundScheduler | None = None
        self._running: set[str] = set()
        self._guard = threading.Lock()

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        now = self.clock()
        for name, schedule in self.schedules.items():
            if schedule.off:
                continue
            first = first_run(schedule, self.records.last_run(name), now)
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
                log.exception("scheduled job %s failed", name)
                summary, ok = f"{type(e).__name__}: {e}", False
            self.records.finished(name, self.clock(), ok, summary,
                                  (time.perf_counter() - t0) * 1000)
        finally:
            with self._guard:
                self._running.discard(name)
        return {"name": name, "ok": ok, "summary": summary, "started": started.isoformat()}

    def status(self) -> list[dict[str, Any]]:
        """Every job: schedule, next run, and what its last run did."""
        records = self.records.read()
        out = []
        for name, job in sorted(self.jobs.items()):
            nxt = None
            if self._scheduler is not None and (aps := self._scheduler.get_job(name)):
                nxt = aps.next_run_time.isoformat() if aps.next_run_time else None
            out.append({"name": name, "description": job.description,
                        "schedule": self.schedules[name].spec, "next_run": nxt,
                        **{k: records.get(name, {}).get(k) for k in (
                            "last_run", "finished", "ok", "summary", "duration_ms", "runs")}})
        return out

    def shutdown(self) -> None:
        """Stop scheduling; wait for a job that is running."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


# -- the built-in jobs --------------------------------------------------------------------
def _tick(host: JobHost) -> str:
    from ouroboros.capabilities.improve.registrar import loop_of

    with host.runtime() as rt:
        checks = loop_of(rt).tick()
    verdicts = ", ".join(f"{c.proposal_id} {c.verdict}" for c in checks)
    return f"{len(checks)} monitoring check(s)" + (f": {verdicts}" if verdicts else "")


def _notify(host: JobHost) -> str:
    from ouroboros.capabilities.improve.registrar import loop_of

    with host.runtime() as rt:
        loop = loop_of(rt)
        sent = loop.notifications.flush(loop.clock(), len(loop.proposals("pending")))
    return f"{len(sent)} notification(s) sent"


def _eval(host: JobHost) -> str:
    """``ouro telemetry collect`` + ``eval --propose``: findings become pending proposals."""
    from ouroboros.capabilities.improve.analysis.workspace import findings
    from ouroboros.capabilities.improve.intake.runtime import collect_ledger
    from ouroboros.capabilities.improve.proposals.loop import Paused
    from ouroboros.capabilities.improve.registrar import loop_of

    store = host.telemetry()
    with host.runtime() as rt:
        collected = collect_ledger(rt, store)
        found = findings(store, store.clock())
        try:
            outcomes = loop_of(rt).propose_from_findings(found) if found else []
        except Paused as e:
            return f"{len(found)} finding(s); no proposals: {e}"
    return (f"{collected} ledger outcome(s) collected; {len(found)} finding(s); "
            f"{len(outcomes)} proposal(s)")


register_job(Job("tick", _tick, "5m", "judge monitoring windows (auto-revert on a spike), "
                 "catch up with kernel decisions, send due notifications"))
register_job(Job("notify", _notify, "1m", "send notifications that are due"))
register_job(Job("eval", _eval, "1h", "collect the ledger's outcomes, analyse telemetry, "
                 "turn findings into proposals (pending approval)"))
