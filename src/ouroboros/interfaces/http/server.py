"""``ouro serve``: the app on uvicorn, bound where it is safe to bind.

A non-loopback address is refused unless the operator says ``--allow-remote``: the API
carries bearer tokens in the clear unless a TLS proxy sits in front. The socket is bound
here (so a taken port or a refused bind is one clear usage error, and ``--port 0`` picks a
free port), then handed to uvicorn. On SIGTERM or SIGINT uvicorn stops accepting, lets
every request in flight finish (up to ``graceful_timeout``), then the app's lifespan stops
the scheduler (waiting for a running job) and closes the runtimes once every lease is back.

Slow clients: uvicorn closes a kept-alive connection that stays idle, but arms that timer
only after a response, and any byte (an empty line will do) disarms it; a connection that
sends nothing, or its headers a byte at a time, was held forever. `guarded_protocol` adds a
header deadline from the connection's opening or a request's first byte, and a cap on open
connections (see `ServerSettings`); the body's deadline is the input guard's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ouroboros.interfaces.http.app import ServerSettings
from ouroboros.interfaces.http.errors import error_json
from ouroboros.interfaces.http.limits import LOOPBACK_NAMES, host_name
from ouroboros.kernel.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
#: Pipelined requests a connection may have waiting behind the one being answered.
MAX_PIPELINED = 16
#: Open files kept for the server's own use (the ledger, blobs, runtimes, logs) below the
#: process's limit when connections are counted against it.
RESERVED_FILES = 128


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (no DNS for literals)."""
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, allow_remote: bool) -> None:
    """Raises UsageError for a non-loopback address without ``allow_remote``."""
    if not allow_remote and not is_loopback(host):
        raise UsageError(f"refusing to listen on {host}: it is not a loopback address",
                         "pass --allow-remote to serve other machines (put a TLS proxy in "
                         "front: tokens travel in the Authorization header)")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: one the OS picks)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve {host!r}: {e.strerror}") from None
    sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(infos[0][4])
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}",
                         "pick another --port (0 lets the system choose)") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def allowed_hosts(host: str, extra: Sequence[str]) -> frozenset[str] | None:
    """The Host names the server answers: on loopback, loopback names (and ``extra``); on
    another address, the ``--allowed-host`` names and the address itself, or any Host when
    none is given (``None``)."""
    names = {*LOOPBACK_NAMES, *(host_name(h) for h in extra)}
    if is_loopback(host):
        return frozenset(names)
    if not extra:
        return None
    bare = host.strip("[]")
    if bare not in ("0.0.0.0", "::"):
        names.add(f"[{bare}]" if ":" in bare else bare.lower())
    return frozenset(names)


def _answer(status: int, code: str, message: str, hint: str) -> bytes:
    """A whole HTTP/1.1 response with the error shape, closing the connection."""
    from http import HTTPStatus

    body = json.dumps(error_json(code, message, hint)).encode()
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class RateLimitedLog(logging.Filter):
    """At most ``burst`` records of one message (its template) per ``window`` seconds on
    the logger it filters; the first one let through after a window in which some were
    dropped says how many. Errors always pass.

    uvicorn writes a warning for every request it cannot parse and two for every request
    asking for an upgrade it cannot do (``Upgrade: websocket`` or ``h2c``): any client that
    can connect could fill the disk with them (184 bytes a request)."""

    def __init__(self, burst: int = 5, window: float = 60.0, kept: int = 256) -> None:
        super().__init__()
        self.burst, self.window, self.kept = burst, window, kept
        self._seen: dict[str, tuple[float, int, int]] = {}  # template: start, n, dropped
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key, now = str(record.msg), time.monotonic()
        with self._lock:
            start, n, dropped = self._seen.get(key, (now, 0, 0))
            if now - start >= self.window:
                if dropped:
                    record.msg = (f"{record.msg} ({dropped} more like this in "
                                  f"{self.window:g} s were not logged)")
                start, n, dropped = now, 0, 0
            if n >= self.burst:
                self._seen[key] = (start, n, dropped + 1)
                return False
            if key not in self._seen and len(self._seen) >= self.kept:
                self._seen.clear()  # (messages formatted in place: no template to share)
            self._seen[key] = (start, n + 1, dropped)
            return True


def host_from_target(target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """RFC 9112 3.2.2: a request whose target is not origin-form (``GET http://a.b/x``,
    ``CONNECT a.b:443``) is for the target's authority, whatever its Host header says: the
    Host headers are replaced (in place: the list is the scope's) by that authority, so the
    Host check (limits.py) and the routes judge the name the request is for. The parser
    keeps only the path, and a foreign authority with ``Host: 127.0.0.1`` was served."""
    if target.startswith(b"/") or target == b"*":
        return
    _, sep, rest = target.partition(b"://")
    authority = re.split(rb"[/?#]", rest if sep else target, maxsplit=1)[0]
    authority = authority.rpartition(b"@")[2]  # (userinfo: deprecated, never a host)
    headers[:] = [(k, v) for k, v in headers if k != b"host"] + [(b"host", authority)]


def guarded_protocol(header_timeout: float, max_connections: int,
                     max_header_bytes: int = 64 << 10,
                     write_timeout: float = 60.0) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a header deadline, a cap on a request's line and
    headers, and a cap on open connections.

    The deadline runs from the connection's opening, and from the first byte after each
    response, until a request's headers are complete: past it the connection is answered
    408 (some of a request came) or just closed (nothing came). A connection opened while
    ``max_connections`` are open is answered 503 at once and closed. A request line and
    headers over ``max_header_bytes`` are answered 431 and the connection closed (the
    parser has no cap of its own: it held every byte until the blank line, and a single
    header it concatenates a piece at a time); so are a chunked body's framing and trailers
    past that cap plus the body's own size (trailers are parsed as headers). A client
    that takes none of an answer for ``write_timeout`` seconds while the server waits to
    write more is disconnected (uvicorn waited for it forever, holding the request's task).
    At most `MAX_PIPELINED` requests wait behind the one being answered: the last of them
    is answered with ``Connection: close`` and any later one is not read (a client that
    pipelines must resend what was not answered); uvicorn queued every request it read,
    and it reads on whenever a request asks for its body, so 1 MiB of pipelined requests
    held 9 MB.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    timeout_answer = _answer(408, "request_timeout", f"the request's headers did not arrive "
                             f"within {header_timeout:g} s", "send the request at once")
    busy_answer = _answer(503, "unavailable", f"the server has {max_connections} "
                          "connections open", "retry shortly")
    too_large_answer = _answer(431, "headers_too_large", f"the request line and headers (and "
                               f"a chunked body's framing and trailers beyond its own size) "
                               f"are over {max_header_bytes} bytes",
                               "send fewer or shorter headers")

    class GuardedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _partial = False
        _head = 0  # bytes of this request that are not its body (counted per chunk read)
        _body = 0  # bytes of its body
        _in_head = False  # its line and headers have begun and not ended
        _in_message = False  # it has begun and not ended
        _write_timer: asyncio.TimerHandle | None = None
        _running: Any = None  # the cycle whose app runs (self.cycle is the last one parsed)
        _dropping = False  # the pipeline was full: requests parsed from now on are not run

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.logger.warning("refused a connection: %d open", max_connections)
                transport.write(busy_answer)
                transport.close()
                return
            self._arm(partial=False)

        def data_received(self, data: bytes) -> None:
            waiting = self.cycle is None or self.cycle.response_complete
            self._head += len(data)
            super().data_received(data)
            if (self._in_message and self._head > max_header_bytes + self._body
                    and not self.transport.is_closing()):
                self._disarm()
                if self._in_head or not self.cycle.response_started:
                    self.transport.write(too_large_answer)
                self.transport.close()
                return
            if (waiting and self._header_timer is None and not self.transport.is_closing()
                    and (self.cycle is None or self.cycle.response_complete)):
                self._arm(partial=bool(data.strip(b"\r\n")))  # headers begun, not ended
            elif self._header_timer is not None and data.strip(b"\r\n"):
                self._partial = True

        def on_message_begin(self) -> None:
            self._in_head = self._in_message = True
            self._body = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            host_from_target(self.url, self.headers)
            if not self._dropping and len(self.pipeline) >= MAX_PIPELINED:
                self._dropping = True
                self.pipeline[0][0].keep_alive = False  # the newest waiting: answered last
            if self._dropping:
                self.flow.pause_reading()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._head -= len(body)
            self._body += len(body)
            if not self._dropping:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._head = 0
            self._in_message = False
            if not self._dropping:
                super().on_message_complete()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(write_timeout, self._stalled)

        def resume_writing(self) -> None:
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            super().resume_writing()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            running = self._running
            super().connection_lost(exc)
            if running is not None and not running.response_complete:
                # uvicorn marks only the last request parsed as cut off; with requests
                # pipelined behind it, the one answering wrote to a closed transport
                running.disconnected = True
                running.message_event.set()

        def _stalled(self) -> None:
            """Reset the connection: a FIN would wait behind the unread answer, and the
            kernel would hold that answer for the orphaned socket."""
            self._write_timer = None
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            self._running = cycle
            super()._start_asgi_task(cycle, app)

        def _arm(self, partial: bool) -> None:
            self._partial = partial
            self._header_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self._partial:
                self.transport.write(timeout_answer)
            self.transport.close()

    return GuardedProtocol


def connection_budget(wanted: int) -> int:
    """The connections the open-file limit allows, at most ``wanted``: the soft limit is
    raised toward the hard one first; `RESERVED_FILES` stay for the server's own files.

    Past the limit, accept fails quietly: a new client is dropped without an answer, and
    the ledger cannot open its files.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, need)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FILES))


def serve(home: Path | str | None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          allow_remote: bool = False, allowed: Sequence[str] = (),
          settings: ServerSettings | None = None, log_level: str = "warning",
          access_log: bool = False, graceful_timeout: int = 30,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve the workspace until SIGINT/SIGTERM; ``ready(url)`` once it accepts requests.

    Raises:
        UsageError: a remote bind without ``allow_remote``, a port in use, no workspace.
    """
    import uvicorn

    from ouroboros.interfaces.http.app import create_app

    check_bind(host, allow_remote)
    settings = settings or ServerSettings()
    settings = replace(settings, limits=replace(
        settings.limits, allowed_hosts=allowed_hosts(host, allowed)))
    app = create_app(home, settings)  # before binding: no workspace, no socket
    sock = bind(host, port)
    url = url_of(sock)
    max_connections = connection_budget(settings.max_connections)
    if max_connections < settings.max_connections:
        import sys

        sys.stderr.write(f"ouro serve: --max-connections lowered from {settings.max_connections}"
                         f" to {max_connections}: the open-file limit is "
                         f"{max_connections + RESERVED_FILES} (raise it with `ulimit -n`)\n")
    protocol = guarded_protocol(settings.header_timeout, max_connections,
                                settings.max_header_bytes, settings.write_timeout)
    # uvicorn's own cap counts this request's connection too; ours is at the accept
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            http=protocol, timeout_graceful_shutdown=graceful_timeout,
                            timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
                            limit_concurrency=max_connections + 1,
                            proxy_headers=False, server_header=False)
    errors_log = logging.getLogger("uvicorn.error")  # (configured by uvicorn.Config)
    if not any(isinstance(f, RateLimitedLog) for f in errors_log.filters):
        errors_log.addFilter(RateLimitedLog())

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit and ready is not None:
                ready(url)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                # uvicorn re-raises the signal that stopped it once it is done; a stop
                # that finished every request is a success, so `ouro serve` exits 0.
                self._captured_signals.clear()

    import sys

    # Work the writer thread does in C (Ed25519, Rego, SQLite) releases the GIL; getting
    # it back waits for the event loop's next forced switch. 5 ms by default is far
    # longer than a whole submit; 0.5 ms keeps the hand-over short.
    sys.setswitchinterval(0.0005)
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
