"""MCP over streamable HTTP at ``/mcp``: the server extension ``ouro serve`` mounts.

Every request passes the bearer check (`BearerASGI`, read role at least: a read token lists,
searches and describes, a submit token also runs, creates, mutates, solves and proposes);
each call then checks its own role against the token's `Principal`. The SDK binds a session
to the token that opened it (another token presenting its id gets 404), so a stolen session
id is worth nothing without the token. The app's Host check, body cap and JSON depth limit
sit in front of ``/mcp`` like any route.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal, Role

PATH = "/mcp"
#: Seconds between checks for new tool versions (tests shorten it).
POLL_ENV = "OURO_MCP_POLL"
#: Sessions one token may hold open at once (the SDK's cap, 10,000, is for the whole
#: server: one token must not be able to take them all). Tests lower it.
SESSIONS_PER_TOKEN_ENV = "OURO_MCP_SESSIONS_PER_TOKEN"
SESSIONS_PER_TOKEN = 256


class _Session:
    """Puts the token in the SDK's terms, so it binds each session to the token that made it,
    and refuses a new session to a token holding ``per_token`` open ones."""

    def __init__(self, app: ASGIApp, manager: Any, per_token: int) -> None:
        self.app = app
        self.manager = manager
        self.per_token = per_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        from ouroboros.interfaces.http.errors import error_response

        principal: Principal | None = scope.get("ouro.principal")
        if principal is not None:
            opening = scope.get("method") == "POST" and not any(
                name == b"mcp-session-id" for name, _ in scope.get("headers", []))
            if opening and self._open(principal) >= self.per_token:
                await error_response(
                    429, "too_many_sessions", f"token {principal.name!r} holds "
                    f"{self.per_token} open MCP sessions, the most one token may",
                    "reuse a session, end those you no longer need (DELETE /mcp with "
                    "their Mcp-Session-Id) or let them idle out")(scope, receive, send)
                return
            scope["user"] = AuthenticatedUser(AccessToken(
                token=principal.token_id, client_id=principal.token_id,
                scopes=[principal.role.value]))
        await self.app(scope, receive, send)

    def _open(self, principal: Principal) -> int:
        """The sessions this token opened that are still open (the SDK forgets a session's
        owner when the session ends)."""
        # a private map of the SDK's (mcp < 3 in pyproject; the cap's test fails first if
        # it moves): read, never written
        owners = getattr(self.manager, "_session_owners", {}).values()
        return sum(1 for owner in owners if owner["client_id"] == principal.token_id)


def _caller(ctx: Any) -> Principal:
    request = ctx.request
    principal = request.scope.get("ouro.principal") if request is not None else None
    if not isinstance(principal, Principal):  # pragma: no cover - BearerASGI always sets it
        raise PermissionError("no authenticated caller")
    return principal


def mount(app: FastAPI, services: Services) -> contextlib.AbstractAsyncContextManager[Any]:
    """The extension (`interfaces/http/app.py`, EXTENSIONS)."""
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )

    from ouroboros.interfaces.http.auth import BearerASGI
    from ouroboros.interfaces.mcp.server import McpServer

    poll = float(os.environ.get(POLL_ENV, "1.0"))
    mcp = McpServer(services, _caller, poll=max(0.05, poll),
                    request_spans=bool(getattr(app.state, "request_spans", False)))
    # The app's InputGuard already answers only the Host names the server serves, so the
    # SDK's own DNS-rebinding check (loopback names only) is left off: it would refuse the
    # names `--allowed-host` admits.
    # JSON, not SSE, answers to POSTs: the catalogue sends nothing on a request's own stream
    # (no progress, no server-initiated requests), and an SSE stream per call cost 0.8 ms
    # of server CPU and a stream parser in the client (docs/BENCHMARKS.md, "MCP"). List
    # changes still reach handshake-era clients on their GET stream; a 2026-era
    # `subscriptions/listen` is answered as a stream whatever this says.
    manager = StreamableHTTPSessionManager(app=mcp.server, max_request_body_size=1 << 20,
                                           json_response=True)
    per_token = int(os.environ.get(SESSIONS_PER_TOKEN_ENV, SESSIONS_PER_TOKEN))
    endpoint = BearerASGI(_Session(StreamableHTTPASGIApp(manager), manager, max(1, per_token)),
                          services.tokens, Role.read, services.limiter)
    # a Route, not a mount: a mount answers "/mcp" with a redirect to "/mcp/"; first, so
    # a call is not matched against every API route before it (one exact path, no clash)
    app.router.routes.insert(0, Route(PATH, endpoint=endpoint))

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return running()
