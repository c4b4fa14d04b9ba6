"""The web console at ``/``: the ledger, approvals, proposals, tools, FLUX and telemetry
for people, in a browser.

Server-rendered (Jinja2) with htmx vendored for in-place updates; no front-end build, no
inline script or style, every string escaped. Like the CLI and the API it holds no logic:
its pages and actions call the same capability functions (see `pages` and `actions`).
People log in with a bearer token once and get a server-side session (`sessions`);
every state-changing form is a POST carrying the session's CSRF token (`auth`). See
docs/serve.md, "Console", and docs/security.md, "The service layer".

Mounted by `mount`, one line in `ouroboros.interfaces.http.app.EXTENSIONS`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from ouroboros.interfaces.http.services import Services


def mount(app: FastAPI, services: Services) -> None:
    """The console's extension: its routes at ``/`` and its static files."""
    from ouroboros.interfaces.http.console import actions, auth, pages
    from ouroboros.interfaces.http.console.rendering import ASSETS, SECURITY_HEADERS, STATIC_PREFIX
    from ouroboros.interfaces.http.console.sessions import SessionStore

    app.state.console_sessions = SessionStore()
    router = APIRouter(include_in_schema=False)
    for module in (auth, pages, actions):  # each module's router uses ConsoleRoute
        router.include_router(module.router)

    async def static(name: str) -> Response:
        asset = ASSETS.get(name)
        if asset is None:
            from ouroboros.interfaces.http.errors import error_response

            return error_response(404, "not_found", f"no static file {name!r}")
        return Response(asset.body, media_type=asset.media_type, headers={
            **SECURITY_HEADERS, "ETag": f'"{asset.etag}"',
            "Cache-Control": "public, max-age=31536000, immutable"})

    app.add_api_route(STATIC_PREFIX + "/{name}", static, methods=["GET"],
                      include_in_schema=False)
    app.include_router(router)
