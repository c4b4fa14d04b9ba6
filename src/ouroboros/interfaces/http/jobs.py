"""Scheduled work inside ``ouro serve``: the improve capability's `Scheduler` on the
server's runtimes, and ``/api/v1/schedule`` to see it and run a job now.

Jobs get runtimes from the server's pool under the same decision lock as the API's
approvals and proposals, so a scheduled ``tick`` and a human's approval never run the
loop at once. Schedules come from ``[schedules]`` in the workspace's ``ouro.toml``,
overridden by ``ServerSettings.schedule`` (``--schedule JOB=SPEC``); a bad one stops
``ouro serve`` before it binds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel

from ouroboros.interfaces.http.errors import ApiError, ErrorBody
from ouroboros.interfaces.http.responses import json_response
from ouroboros.interfaces.http.routes.deps import AUTH_RESPONSES, Admin, Reader
from ouroboros.interfaces.http.services import Services

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.capabilities.improve.schedule import Scheduler
    from ouroboros.kernel import Runtime
    from ouroboros.kernel.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["schedule"], responses=AUTH_RESPONSES)


class ServerHost:
    """The server as a `JobHost`."""

    def __init__(self, services: Services, settings: Settings) -> None:
        self.services = services
        self.home: Path = services.home
        self.settings = settings

    @contextlib.contextmanager
    def runtime(self) -> Iterator[Runtime]:
        with self.services.decisions, self.services.lease() as lease:
            yield lease.rt

    def telemetry(self) -> TelemetryStore:
        return self.services.telemetry()


class JobStatus(BaseModel):
    name: str
    description: str
    schedule: str
    next_run: str | None = None
    last_run: str | None = None
    finished: str | None = None
    ok: bool | None = None
    summary: str | None = None
    duration_ms: float | None = None
    runs: int | None = None


class JobRun(BaseModel):
    name: str
    ok: bool
    summary: str
    started: str | None = None


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


@router.get("/schedule", response_model=list[JobStatus],
            summary="Scheduled jobs: schedule, next run, last outcome")
def schedule(request: Request, _: Reader) -> Response:
    return json_response(_scheduler(request).status())


@router.post("/schedule/{name}/run", response_model=JobRun,
             responses={404: {"model": ErrorBody, "description": "No such job"}},
             summary="Run a scheduled job now and wait for it")
def run_job(request: Request, _: Admin,
            name: Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]) -> Response:
    scheduler = _scheduler(request)
    if name not in scheduler.jobs:
        raise ApiError(404, "not_found", f"no scheduled job {name!r}",
                       f"jobs: {', '.join(sorted(scheduler.jobs))}")
    result: dict[str, Any] = scheduler.run(name)
    return json_response(result)


def mount(app: FastAPI, services: Services) -> contextlib.AbstractAsyncContextManager[None]:
    from ouroboros.capabilities.improve.schedule import Scheduler
    settings = app.state.settings
    workspace = services.settings()  # SettingsError names file and key
    # UsageError if a schedule is malformed or names no job: before the server binds
    scheduler = Scheduler(ServerHost(services, workspace), settings.schedule)
    app.state.scheduler = scheduler
    app.include_router(router)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if settings.scheduler:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown()  # waits for a running job

    return lifespan()
