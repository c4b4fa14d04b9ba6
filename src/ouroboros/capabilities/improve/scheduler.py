"""Jobs on schedules, with persisted last runs and missed runs caught up once.

A small interface that ``ouro serve``'s scheduler can take over: a :class:`Job` is a
name, a schedule (``every 5m``, ``@daily``, or five cron fields, see
``ouroboros.kernel.settings.check_schedule``) and a function of the time it runs at.
The schedule arithmetic is APScheduler's (its cron and interval triggers); the state
(the last run of each job) is a JSON file, so a process that was down for a week runs
each missed job once when it comes back, not once per missed slot.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from ouroboros.kernel.settings import check_schedule, crontab_of, interval_seconds


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    func: Callable[[datetime], Any]

    def __post_init__(self) -> None:
        check_schedule(self.schedule)  # ValueError naming the schedule


@dataclass(frozen=True)
class JobRun:
    name: str
    at: str
    ok: bool
    detail: str


def next_after(schedule: str, after: datetime) -> datetime | None:
    """The first time strictly after ``after`` the schedule fires (None: ``off``)."""
    text = schedule.strip()
    if text == "off":
        return None
    seconds = interval_seconds(text)
    if seconds is not None:
        return after + timedelta(seconds=seconds)
    trigger = CronTrigger.from_crontab(crontab_of(text), timezone=UTC)
    start = after + timedelta(seconds=1)
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    return fire.astimezone(UTC) if fire else None


class JobRegistry:
    """The jobs a process runs; capabilities add theirs (``add`` replaces by name)."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self.jobs: dict[str, Job] = {}
        for job in jobs:
            self.add(job)

    def add(self, job: Job) -> None:
        self.jobs[job.name] = job


class Scheduler:
    def __init__(self, registry: JobRegistry, state: Path, clock: Callable[[], datetime]
                 ) -> None:
        self.registry = registry
        self.path = Path(state)
        self.clock = clock
        self.state: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.state = json.loads(self.path.read_text(encoding="utf-8"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def last_run(self, name: str) -> datetime | None:
        at = self.state.get(name, {}).get("last_run")
        return datetime.fromisoformat(at) if at else None

    def next_run(self, job: Job) -> datetime | None:
        """When ``job`` is next due: now for a job that never ran, else the first slot
        after its last run (one slot however many were missed)."""
        last = self.last_run(job.name)
        if job.schedule.strip() == "off":
            return None
        return self.clock() if last is None else next_after(job.schedule, last)

    def due(self, now: datetime | None = None) -> list[Job]:
        now = now or self.clock()
        return [job for job in self.registry.jobs.values()
                if (at := self.next_run(job)) is not None and at <= now]

    def run_due(self, now: datetime | None = None) -> list[JobRun]:
        """Run every due job once; a failing job is recorded and does not stop the others.
        The last run is recorded either way, so a job that keeps failing waits for its
        next slot instead of running in a hot loop."""
        now = now or self.clock()
        runs = []
        for job in self.due(now):
            try:
                detail = job.func(now)
                ok, text = True, "" if detail is None else str(detail)
            except Exception as e:  # one job's failure is reported, never fatal
                ok, text = False, f"{type(e).__name__}: {e}"
            run = JobRun(job.name, now.isoformat(), ok, text[:500])
            self.state[job.name] = {"last_run": now.isoformat(), "ok": ok, "detail": run.detail}
            self._save()
            runs.append(run)
        return runs

    def run_forever(self, stop: threading.Event, on_run: Callable[[JobRun], None],
                    poll_s: float = 15.0) -> None:
        """Run due jobs until ``stop`` is set, waking every ``poll_s`` seconds."""
        while not stop.is_set():
            for run in self.run_due():
                on_run(run)
            stop.wait(poll_s)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for job in self.registry.jobs.values():
            nxt = self.next_run(job)
            out.append({"job": job.name, "schedule": job.schedule,
                        **self.state.get(job.name, {}),
                        "next_run": nxt.isoformat() if nxt else None})
        return out


def as_dict(run: JobRun) -> dict[str, Any]:
    return asdict(run)
