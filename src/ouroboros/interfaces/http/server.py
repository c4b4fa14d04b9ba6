"""``ouro serve``: the app on uvicorn, bound where it is safe to bind.

A non-loopback address is refused unless the operator says ``--allow-remote``: the API
carries bearer tokens in the clear unless a TLS proxy sits in front. The socket is bound
here (so a taken port or a refused bind is one clear usage error, and ``--port 0`` picks a
free port), then handed to uvicorn. On SIGTERM or SIGINT uvicorn stops accepting, lets
every request in flight finish (up to ``graceful_timeout``), then the app's lifespan stops
the scheduler (waiting for a running job) and closes the runtimes once every lease is back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ouroboros.interfaces.http.app import ServerSettings
from ouroboros.interfaces.http.limits import LOOPBACK_NAMES, host_name
from ouroboros.kernel.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750


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
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            http="httptools", timeout_graceful_shutdown=graceful_timeout,
                            proxy_headers=False, server_header=False)

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
