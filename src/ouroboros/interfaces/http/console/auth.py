"""Who is looking, and whether a form really came from them: sessions, roles, CSRF.

- `viewer` finds the request's session and checks its token again (a revoked token ends
  the session at once); the result carries the token's `Principal`, whose role decides
  what the pages offer and what the actions allow, exactly as for the API.
- `form_action` guards every state-changing request, in this order: a live session; an
  ``Origin`` (when the browser sends one) that is this server, and no
  ``Sec-Fetch-Site: cross-site``; a form body (``application/x-www-form-urlencoded``);
  the session's CSRF token in the form (compared in constant time); then the role. A
  request that fails any step changes nothing.
- The login and logout routes.

A GET never changes anything: every action is a POST through `form_action`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ouroboros.capabilities import tracing
from ouroboros.interfaces.http.console.rendering import render, secure
from ouroboros.interfaces.http.console.routing import ConsoleRoute
from ouroboros.interfaces.http.console.sessions import (
    LOGIN_COOKIE,
    LOGIN_NONCE_TTL,
    SESSION_COOKIE,
    Session,
    SessionStore,
)
from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal, Role
from ouroboros.kernel.errors import UsageError

MAX_FIELDS = 16


class PageError(Exception):
    """An error page: status, a title, what happened, what to do."""

    def __init__(self, status: int, title: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint


class NotLoggedIn(Exception):
    """No live session: pages redirect to the login form, actions are refused."""

    def __init__(self, why: str = "login") -> None:
        super().__init__(why)
        self.why = why  # a key of `WHY`


@dataclass
class Viewer:
    """The person behind a request: their session and their token's principal."""

    session_id: str
    session: Session
    principal: Principal

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def may(self, role: str) -> bool:
        return self.principal.role.allows(Role(role))

    def context(self) -> dict[str, Any]:
        """What every page's layout needs."""
        return {"viewer": self, "flash": self.session.take_flash()}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def sessions_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


def viewer(request: Request) -> Viewer:
    """The request's viewer.

    Raises:
        NotLoggedIn: no session, an expired one, or its token was revoked.
        PageError: 503 when the token file cannot be read (the server fails closed).
    """
    store = sessions_of(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    session = store.get(session_id)
    if session is None or session_id is None:
        raise NotLoggedIn("ended" if session_id else "login")
    try:
        principal = services_of(request).tokens.verify(session.token)
    except UsageError:
        raise PageError(503, "Tokens unreadable", "the server cannot check tokens now",
                        "the server's log says why") from None
    if principal is None:
        store.end(session_id)
        raise NotLoggedIn("revoked")
    return Viewer(session_id, session, principal)


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin or site."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent by every client; the CSRF token still decides
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


async def read_form(request: Request) -> FormData:
    """The request's form fields (URL-encoded only: no file uploads, few fields)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Not a form", "the console accepts only HTML form posts")
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:  # Starlette's MultiPartException and the parser's own errors
        raise PageError(400, "Bad form", "the form body could not be read") from None


async def form_action(request: Request, needed: Role) -> tuple[Viewer, FormData]:
    """Check a state-changing request (see the module docstring) and return its form.

    Raises:
        NotLoggedIn: no live session.
        PageError: 403 from another origin, without the session's CSRF token, or for a
            role that lacks the right; 415/400 for a body that is not a form.
    """
    who = viewer(request)
    if not _same_origin(request):
        raise PageError(403, "Refused", "this request came from another site or origin",
                        "use the console's own pages")
    form = await read_form(request)
    csrf = form.get("csrf")
    if not who.session.check_csrf(csrf if isinstance(csrf, str) else None):
        raise PageError(403, "Refused", "the form did not carry this session's CSRF token "
                        "(it came from another page, or the session changed)",
                        "reload the page and try again")
    if not who.principal.role.allows(needed):
        raise PageError(403, "Not allowed", f"a {who.principal.role.value} token may not do "
                        f"this: it needs the {needed.value} role",
                        "log in with a token of that role")
    tracing.set_caller(who.principal.name)  # a run from the console is the token's
    return who, form


def field(form: FormData, name: str, limit: int = 10_000) -> str:
    """A text field of a form ("" when absent), at most ``limit`` characters."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PageError(400, "Bad form", f"{name} must be text")
    if len(value) > limit:
        raise PageError(400, "Too long", f"{name} is over {limit:,} characters")
    return value


def safe_next(target: str | None) -> str:
    """A redirect target inside this console ('/' for anything else: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or any(ord(c) < 33 for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def redirect(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


#: Why the login form is shown, by code (a link cannot put words of its own on the page).
WHY = {"login": "log in to continue", "ended": "your session has ended; log in again",
       "revoked": "your token was revoked; log in with a valid one",
       "out": "you are logged out"}


def to_login(request: Request, why: str = "login") -> Response:
    """Where a request without a session goes: the login form, then back."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/login?why={why}&next=" + quote(safe_next(target), safe="/")
    if request.headers.get("hx-request"):
        return secure(Response(status_code=204, headers={"HX-Redirect": url}))
    return redirect(url)


def cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- login and logout ---------------------------------------------------------------------
router = APIRouter(route_class=ConsoleRoute)


def _login_page(request: Request, next_url: str, message: str = "", status: int = 200
                ) -> Response:
    nonce, mac = sessions_of(request).login_nonce()
    response = render("login.html", {"viewer": None, "flash": [], "next": next_url,
                                     "login_mac": mac, "message": message}, status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=int(LOGIN_NONCE_TTL), httponly=True,
                        samesite="strict", secure=cookie_secure(request), path="/login")
    return response


@router.get("/login")
def login_form(request: Request,
               next: Annotated[str, Query(max_length=2000)] = "/",
               why: Annotated[str, Query(max_length=16)] = "") -> Response:
    return _login_page(request, safe_next(next), WHY.get(why, ""))


@router.post("/login")
async def login(request: Request) -> Response:
    if not _same_origin(request):
        raise PageError(403, "Refused", "a login must come from the console's own page")
    form = await read_form(request)
    next_url = safe_next(field(form, "next", 2000))
    store = sessions_of(request)
    if not store.check_login_nonce(request.cookies.get(LOGIN_COOKIE), field(form, "login", 200)):
        return _login_page(request, next_url, "the login form expired or came from another "
                           "page; try again", 403)
    token = field(form, "token", 8192).strip()
    services = services_of(request)
    try:  # a token is 62 characters: anything much longer is not one
        principal = await run_in_threadpool(services.tokens.verify, token) \
            if 0 < len(token) <= 200 else None
    except UsageError:
        raise PageError(503, "Tokens unreadable", "the server cannot check tokens now",
                        "the server's log says why") from None
    if principal is None:
        return _login_page(request, next_url, "that token is not valid (unknown, revoked "
                           "or mistyped)", 401)
    store.end(request.cookies.get(SESSION_COOKIE))  # a login replaces any earlier session
    session_id, session = store.create(token)
    session.say("good", f"logged in as {principal.name} ({principal.role.value})")
    response = redirect(next_url)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict",
                        secure=cookie_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form_action(request, Role.read)
    sessions_of(request).end(request.cookies.get(SESSION_COOKIE))
    response = redirect("/login?why=out")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
