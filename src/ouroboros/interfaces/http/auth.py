"""Roles as FastAPI dependencies, and the same check for mounted ASGI apps.

``Depends(require(Role.submit))`` on a route (or a router) answers 401 without a valid
bearer token and 403 when the token's role lacks the right, and hands the route the
caller's `Principal`; a token over its rate limit (`ratelimit.py`) gets 429 with
``Retry-After``. `BearerASGI` wraps a mounted sub-application (MCP, for one) in the
same check, since FastAPI dependencies do not reach inside a mount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from ouroboros.capabilities import tracing
from ouroboros.interfaces.http.errors import ApiError, error_response, log
from ouroboros.interfaces.http.ratelimit import RateLimiter, retry_after
from ouroboros.interfaces.http.tokens import Principal, Role, TokenStore
from ouroboros.kernel.errors import UsageError

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`; "
                     "issue one with `ouro token new NAME --role read|submit|approve|admin`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def tokens_of(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.services.tokens
    return store


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.services.limiter
    return limiter


def authenticate(store: TokenStore, authorization: str | None,
                 limiter: RateLimiter | None = None) -> Principal:
    """The principal behind an ``Authorization`` header value, counted against its
    token's rate limit when a ``limiter`` is given.

    Raises:
        ApiError: 401 when the header is missing, not a bearer token, or the token is
            unknown or revoked; 429 when the token is over its rate.
    """
    if not authorization:
        raise ApiError(401, "unauthorized", "this endpoint needs a bearer token",
                       "send `Authorization: Bearer <token>`; `ouro token new` issues one",
                       headers=_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be `Bearer <token>`",
                       headers=_CHALLENGE)
    try:
        principal = store.verify(token.strip())
    except UsageError as e:  # a damaged token file: fail closed, say where only in the log
        log.error("token store unreadable: %s", e)
        raise ApiError(503, "unavailable", "the server cannot check tokens now",
                       "the server's log says why") from None
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is not valid (unknown or revoked)",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if limiter is not None:  # after the check: only a verified token spends its bucket
        wait = limiter.take(principal.token_id)
        if wait > 0:
            raise ApiError(429, "rate_limited",
                           f"token {principal.name!r} is over its rate limit "
                           f"({limiter.limit.rate:g} requests a second, bursts of "
                           f"{limiter.limit.burst})", f"retry in {wait:.2f} s",
                           headers={"Retry-After": retry_after(wait)})
    return principal


def authorize(principal: Principal, needed: Role) -> None:
    if not principal.role.allows(needed):
        raise ApiError(403, "forbidden",
                       f"a {principal.role.value} token may not do this: it needs the "
                       f"{needed.value} role", "ask an admin for a token with that role")


def require(needed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting tokens whose role includes ``needed``."""

    # async: a check costs a stat and a hash, not worth a hop to the thread pool
    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None
                         = Depends(_bearer)) -> Principal:
        # ``credentials`` is declared for the OpenAPI security scheme; the header is read
        # directly so that a malformed one gets our message, not HTTPBearer's.
        principal = authenticate(tokens_of(request), request.headers.get("authorization"),
                                 limiter_of(request))
        authorize(principal, needed)
        request.state.principal = principal
        tracing.set_caller(principal.name)  # this request's spans are the token's
        return principal

    dependency.__name__ = f"require_{needed.value}"
    return dependency


class BearerASGI:
    """An ASGI app behind the bearer check: ``BearerASGI(app, store, Role.submit)``.

    The caller's `Principal` is put in ``scope["ouro.principal"]``; lifespan messages and
    anything but HTTP pass through untouched (WebSocket upgrades are refused with 403).
    """

    def __init__(self, app: ASGIApp, store: TokenStore, needed: Role,
                 limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.store = store
        self.needed = needed
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            principal = authenticate(self.store, header, self.limiter)
            authorize(principal, self.needed)
        except ApiError as e:
            await error_response(e.status, e.code, e.message, e.hint, e.headers)(
                scope, receive, send)
            return
        scope["ouro.principal"] = principal
        await self.app(scope, receive, send)
