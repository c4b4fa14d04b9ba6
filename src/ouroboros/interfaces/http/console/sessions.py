"""Console sessions: a random id in a cookie, everything else in the server's memory.

A person logs in once with a bearer token; the server answers with a session id (256
random bits) in an ``HttpOnly``, ``SameSite=Strict`` cookie. The server keeps, under the
id's SHA-256, the token (to check it again on every request, so a revoked token ends its
sessions at once), the session's CSRF token, and one-shot messages for the next page.
Nothing about a session is written to disk: a restart logs everyone out.

Sessions end after `IDLE` without a request, `LIFETIME` after login, on logout, or when
the token is revoked; at most `MAX_SESSIONS` live at once (the least recently used goes
first), so logging in in a loop cannot grow the server's memory.

The login form has no session yet; it is protected by a *login nonce*: a random value in
a short-lived cookie of its own, and in the form an HMAC of it under a per-process key.
A page on another site can neither read the cookie nor compute the HMAC, so it cannot log
a victim's browser in with the attacker's token (login CSRF).

This module imports no web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "ouro_console"
LOGIN_COOKIE = "ouro_console_login"
IDLE = 2 * 3600.0  # seconds without a request
LIFETIME = 12 * 3600.0  # seconds after login, however active
LOGIN_NONCE_TTL = 3600.0
MAX_SESSIONS = 1000
MAX_FLASH = 8


@dataclass
class Session:
    """One logged-in browser. ``token`` never leaves the server."""

    token: str
    csrf: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    def check_csrf(self, presented: str | None) -> bool:
        """Whether a form's CSRF field is this session's token (constant time)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                                   self.csrf.encode())

    def say(self, level: str, text: str) -> None:
        """A message for the next page this session sees."""
        self.flash = [*self.flash, (level, text)][-MAX_FLASH:]

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """The live sessions of one server (thread-safe: sync routes run in a pool)."""

    def __init__(self, *, idle: float = IDLE, lifetime: float = LIFETIME,
                 capacity: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.capacity = capacity
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._login_key = secrets.token_bytes(32)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def create(self, token: str) -> tuple[str, Session]:
        """A new session for a checked token; returns the id for the cookie (a fresh id at
        every login, so an id planted before login is worth nothing)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(token=token, csrf=secrets.token_urlsafe(32), created=now, seen=now)
        with self._lock:
            self._sessions[_key(session_id)] = session
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session behind a cookie value, or None (unknown, idle, too old)."""
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        now = self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > self.idle or now - session.created > self.lifetime:
                del self._sessions[key]
                return None
            session.seen = now
            self._sessions.move_to_end(key)
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    # -- the login form's nonce ---------------------------------------------------------
    def login_nonce(self) -> tuple[str, str]:
        """(cookie value, form value) for a login form."""
        nonce = f"{int(time.time())}.{secrets.token_urlsafe(24)}"
        return nonce, self._login_mac(nonce)

    def check_login_nonce(self, cookie: str | None, presented: str | None) -> bool:
        """Whether the form's value belongs to the cookie's nonce, and it is recent."""
        if not cookie or not presented or len(cookie) > 128 or len(presented) > 128:
            return False
        issued, _, _ = cookie.partition(".")
        if not (issued.isascii() and issued.isdigit()) \
                or time.time() - int(issued) > LOGIN_NONCE_TTL:
            return False
        return hmac.compare_digest(self._login_mac(cookie).encode(),
                                   presented.encode("utf-8", "surrogatepass"))

    def _login_mac(self, nonce: str) -> str:
        return hmac.new(self._login_key, nonce.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()
