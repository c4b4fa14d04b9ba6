"""A client-side bound on every call to the PostgreSQL server.

The server's own ``statement_timeout``/``lock_timeout`` end a statement that runs or waits
too long, and TCP keepalives notice a peer that vanished; neither helps when the server
(or a proxy on the way) is alive but does not answer: a stopped process (SIGSTOP, a hung
VM), whose kernel still acknowledges every packet. libpq then waits in ``poll()`` with no
limit, and so would ``ouro state``, ``ouro patch submit`` or a request to ``ouro serve``.

A ``Deadline`` is armed around each call on one connection; one watcher thread per process
shuts the connection's socket down (``shutdown(2)`` on a duplicate of its descriptor) once
an armed call has run past its bound. libpq's wait then ends with "server closed the
connection", the caller reports ``fired`` as a timeout, and the backend opens a new
session on its next call. Arming costs a lock and a dict entry, not a thread or a wake-up:
the watcher sleeps until the earliest deadline (at most ``_IDLE`` seconds), so a bound is
kept within ``_IDLE`` seconds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_IDLE = 1.0  #: the watcher's longest sleep (seconds): how late a bound may be noticed
_lock = threading.Lock()
_armed: dict[int, Deadline] = {}
_watcher: tuple[int, threading.Thread] | None = None  # (pid, thread): a fork starts anew


class Deadline:
    """The bound (``seconds``) of the calls on one connection; ``fired`` once it cut one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._at = 0.0
        self._fd = -1
        self._depth = 0

    @contextmanager
    def armed(self, conn: Any) -> Iterator[None]:
        """Bound the calls made on ``conn`` (a psycopg connection) inside the block;
        nested blocks share the outer one's bound. A connection the watcher cut is closed
        on the way out, so the caller's next call opens a new one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            fd = conn.pgconn.socket
        except Exception:  # a closed or broken connection: its own call will say so
            yield
            return
        with _lock:
            self.fired = False
            self._fd = fd
            self._at = time.monotonic() + self.seconds
            self._depth = 1
            _armed[id(self)] = self
            _ensure_watcher()
        try:
            yield
        finally:
            with _lock:
                _armed.pop(id(self), None)
                self._depth = 0
            if self.fired and not conn.closed:
                conn.close()

    def extend(self) -> None:
        """The call is making progress (a long ``COPY``): its bound starts again."""
        self._at = time.monotonic() + self.seconds


def _ensure_watcher() -> None:
    global _watcher
    if _watcher is None or _watcher[0] != os.getpid() or not _watcher[1].is_alive():
        thread = threading.Thread(target=_watch, name="ouro-pg-deadline", daemon=True)
        thread.start()
        _watcher = (os.getpid(), thread)


def _watch() -> None:
    while True:
        with _lock:
            now = time.monotonic()
            for key, d in list(_armed.items()):
                if d._at <= now:
                    del _armed[key]
                    d.fired = True
                    _cut(d._fd)
            wait = min((d._at - now for d in _armed.values()), default=_IDLE)
        time.sleep(min(max(wait, 0.01), _IDLE))


def _cut(fd: int) -> None:
    """Shut the socket behind ``fd`` down (the descriptor stays the connection's: libpq
    closes it): a blocked ``poll()``/``recv()`` on it returns at once."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()
