"""The ``/api/v1`` routers, mounted by `mount_api` (the first of the app's extensions)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.routing import Route

from ouroboros.interfaces.http.services import Services

API_PREFIX = "/api/v1"


def mount_api(app: FastAPI, services: Services) -> None:
    from ouroboros.interfaces.http.routes import health, improve, kernel, tools

    api = APIRouter(prefix=API_PREFIX)
    for module in (health, kernel, tools, improve):
        api.include_router(module.router)
    app.include_router(api)
    # The hottest write path, routed first as a bare Starlette endpoint (see submit_fast).
    app.router.routes.insert(0, Route(f"{API_PREFIX}/patches", kernel.submit_fast,
                                      methods=["POST"]))
