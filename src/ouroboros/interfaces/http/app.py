"""``create_app(home)``: the FastAPI application behind ``ouro serve``.

The app is assembled from **extensions**: each is a function ``mount(app, services)``
that adds routers or mounts ASGI sub-apps, and may return an async context manager that
the app's lifespan enters on start and leaves on shutdown (a sub-app's own lifespan is not
run by a mount, so this is where it goes). The API, the OTLP receiver and the scheduler are
extensions like any other; MCP and the console add themselves with one line in
`EXTENSIONS`. See docs/serve.md, "Extending the server".
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ouroboros.interfaces.http import errors
from ouroboros.interfaces.http.errors import ErrorBody
from ouroboros.interfaces.http.limits import InputGuard, Limits
from ouroboros.interfaces.http.ratelimit import RateLimit
from ouroboros.interfaces.http.services import Services

#: ``mount(app, services) -> AbstractAsyncContextManager | None``
Extension = Callable[[FastAPI, Services], contextlib.AbstractAsyncContextManager[Any] | None]

#: Mounted in order by `create_app`, each as ``"module:function"`` (imported only then).
EXTENSIONS: list[str] = [
    "ouroboros.interfaces.http.routes:mount_api",       # /api/v1
    "ouroboros.interfaces.http.routes.otlp:mount",      # /v1/traces, /v1/logs
    "ouroboros.interfaces.http.jobs:mount",             # scheduled work, /api/v1/schedule
    "ouroboros.interfaces.http.routes.slack:mount",     # /slack/commands (Slack-signed)
    "ouroboros.interfaces.mcp.http:mount",              # /mcp
    "ouroboros.interfaces.http.console:mount",          # the web console at /
]

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class ServerSettings:
    """How the app behaves; every field has a safe default.

    ``schedule`` maps job names to schedule specs (see `ouroboros.capabilities.improve.
    schedule`) over ``[schedules]`` of ``ouro.toml``; ``scheduler=False`` runs none.

    Slow clients (``ouro serve`` only): a request's line and headers must arrive within
    ``header_timeout`` seconds of the connection opening or of its first byte (408, or the
    connection closed if nothing came); a kept-alive connection idle ``keep_alive_timeout``
    seconds is closed; past ``max_connections`` open connections a new one is answered 503
    and closed; a request line and headers over ``max_header_bytes`` are 431; a client that
    takes none of an answer for ``write_timeout`` seconds is disconnected. The body's
    deadline is ``limits.body_timeout``.
    """

    limits: Limits = field(default_factory=Limits)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    pool_size: int = 8
    lease_timeout: float = 30.0
    scheduler: bool = True
    schedule: dict[str, str] | None = None
    extensions: Sequence[str] | None = None  # None: EXTENSIONS
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000
    max_header_bytes: int = 64 << 10
    write_timeout: float = 60.0


def _load(spec: str) -> Extension:
    module, _, name = spec.partition(":")
    fn: Extension = getattr(importlib.import_module(module), name)
    return fn


def create_app(home: Path | str | None = None, settings: ServerSettings | None = None,
               *, extra: Sequence[Extension] = ()) -> FastAPI:
    """The service layer for the workspace at ``home`` (``$OURO_HOME``, else ``./.ouro``).

    ``extra`` extensions are mounted after the configured ones (tests and embedders).

    Raises:
        WorkspaceMissing: there is no workspace at ``home``.
    """
    settings = settings or ServerSettings()
    services = Services(home, pool_size=settings.pool_size,
                        lease_timeout=settings.lease_timeout, rate_limit=settings.rate_limit)
    contexts: list[contextlib.AbstractAsyncContextManager[Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(services.close)  # last out: after every extension stopped
            for context in contexts:
                await stack.enter_async_context(context)
            yield

    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("ouroboros")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        number = "0"
    request_spans = services.export_spans()  # SettingsError names file and key
    app = FastAPI(title="Ouroboros", version=number, lifespan=lifespan,
                  telemetry={"tracing": request_spans},
                  description="The governed kernel, its capabilities and the OTLP receiver "
                              "over HTTP. Every endpoint but `/api/v1/health` needs "
                              "`Authorization: Bearer <token>`.",
                  responses={400: {"model": ErrorBody, "description": "Bad input"},
                             413: {"model": ErrorBody, "description": "Body over the cap"}})
    app.state.services = services
    app.state.request_spans = request_spans
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(InputGuard, limits=settings.limits)
    specs = EXTENSIONS if settings.extensions is None else settings.extensions
    for ext in [*(_load(s) for s in specs), *extra]:
        context = ext(app, services)
        if context is not None:
            contexts.append(context)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with its validation-error body replaced by ours (every 422 that
    is not a route's own answer has the one error shape)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # /patches reads its body raw (the kernel parses envelopes strictly); its documented
    # shape is the Envelope model, put where the route's $ref points.
    from ouroboros.interfaces.schemas import Envelope

    envelope = Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["Envelope"] = envelope
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422")
            if response is None:
                continue
            content = response.get("content", {}).get("application/json", {})
            ref = content.get("schema", {}).get("$ref", "")
            if ref.endswith("/HTTPValidationError"):
                content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
                response["description"] = "Invalid request"
    app.openapi_schema = schema
    return schema
