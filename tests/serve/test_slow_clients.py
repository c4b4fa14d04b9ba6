"""Slow and idle clients against a real ``ouro serve``: raw sockets on loopback.

The server is started with its deadlines set small (``--header-timeout``,
``--body-timeout``, ``--keep-alive-timeout`` 1 s, ``--max-connections``); every attack
must end with the connection answered or closed well within a generous bound, while
another client's ordinary request is served meanwhile. No timing is asserted beyond
"within 30 s when the deadline is 1 s".
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import new_workspace
from .live import LiveServer, start

BOUND = 30.0  # generous: every deadline below is 1 s


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = new_workspace(tmp_path_factory.mktemp("slow") / "ws")
    server = start(home, "--no-scheduler", "--header-timeout", "1", "--body-timeout", "1",
                   "--keep-alive-timeout", "1", "--max-connections", "16",
                   "--write-timeout", "1")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0, err
        assert "Traceback" not in err, err


def _address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(_address(server), timeout=BOUND)


def _read_until_closed(s: socket.socket, limit: float = BOUND) -> bytes:
    """Everything the server sends until it closes; fails if it is still open at ``limit``."""
    s.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the connection is still open after {limit} s: {data!r}")


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _health_ok(server: LiveServer) -> None:
    with server.client() as c:
        assert c.get("/api/v1/health").status_code == 200


def test_connections_that_send_nothing_are_closed(slow: LiveServer) -> None:
    idle = [_connect(slow) for _ in range(8)]
    try:
        _health_ok(slow)  # served while eight connections sit idle
        for s in idle:
            assert _read_until_closed(s) == b""  # closed without an answer: no request began
    finally:
        for s in idle:
            s.close()
    _health_ok(slow)


def test_headers_sent_a_byte_at_a_time_get_408(slow: LiveServer) -> None:
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    with _connect(slow) as s:
        s.settimeout(0.3)
        deadline = time.monotonic() + BOUND
        answer = b""
        for byte in request:
            if time.monotonic() > deadline:
                raise AssertionError("the trickled headers were never cut off")
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            _health_ok(slow)  # another client is served during the attack
            try:
                answer = s.recv(65536)
            except TimeoutError:
                continue
            break
        else:
            raise AssertionError("every header byte was accepted: no header deadline")
        answer += _read_until_closed(s)
    status, body = _status_and_body(answer)
    assert status == 408
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_empty_lines_on_a_kept_alive_connection_do_not_keep_it_open(slow: LiveServer) -> None:
    with _connect(slow) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(BOUND)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        # CRLF between requests is allowed and resets uvicorn's keep-alive timer
        deadline = time.monotonic() + BOUND
        while True:
            assert time.monotonic() < deadline, "empty lines kept the connection open"
            try:
                s.sendall(b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.3)
            try:
                if s.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
    _health_ok(slow)


def test_an_idle_kept_alive_connection_is_closed(slow: LiveServer) -> None:
    with _connect(slow) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = _read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
def test_a_body_that_stalls_or_trickles_gets_408(slow: LiveServer, trickle: bool) -> None:
    token = slow.token("slow-submitter", "submit")
    head = (b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 5000\r\n\r\n")
    with _connect(slow) as s:
        s.sendall(head + b"{")
        answer = b""
        if trickle:
            s.settimeout(0.2)
            deadline = time.monotonic() + BOUND
            while not answer:
                assert time.monotonic() < deadline, "the trickled body was never cut off"
                try:
                    s.sendall(b" ")
                    answer = s.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
        else:
            _health_ok(slow)  # served while the body stalls
        answer += _read_until_closed(s)
    status, body = _status_and_body(answer)
    assert status == 408
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert b"connection: close" in answer.lower()
    _health_ok(slow)


def test_connections_past_the_cap_get_503_and_others_are_served_after(tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    server = start(home, "--no-scheduler", "--header-timeout", "60", "--max-connections", "4")
    try:
        held = [_connect(server) for _ in range(4)]
        try:
            time.sleep(0.5)  # the server has taken them (accept is asynchronous)
            with _connect(server) as extra:  # answered at once, before it sends anything
                answer = _read_until_closed(extra)
            status, body = _status_and_body(answer)
            assert status == 503
            assert body["error"]["code"] == "unavailable"  # type: ignore[index]
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + BOUND
        while True:  # the held connections are gone once the server saw them close
            with server.client() as c:
                if c.get("/api/v1/health").status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server never served again"
            time.sleep(0.2)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


def test_the_deadlines_are_usage_checked(tmp_path: Path) -> None:
    import subprocess
    import sys

    for option, value in [("--header-timeout", "0"), ("--body-timeout", "-1"),
                          ("--keep-alive-timeout", "0"), ("--max-connections", "0"),
                          ("--write-timeout", "0"), ("--max-header-bytes", "10")]:
        done = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home",
                               str(tmp_path / "none"), option, value],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (option, done.stderr)
        assert "Traceback" not in done.stderr


def _peak_kb(server: LiveServer) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1])


@pytest.mark.parametrize("shape", ["many", "one_long", "long_url", "trailers"])
def test_headers_past_the_cap_get_431_and_are_not_held(slow: LiveServer, shape: str) -> None:
    before = _peak_kb(slow)
    with _connect(slow) as s:
        if shape == "long_url":
            s.sendall(b"GET /api/v1/health?q=")
        elif shape == "trailers":  # after a chunked body: trailer fields, parsed as headers
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\n")
        else:
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            if shape == "one_long":
                s.sendall(b"X-Long: ")
        line = (b"X-Pad: " + b"a" * 1000 + b"\r\n" if shape in ("many", "trailers")
                else b"a" * 1024)
        sent = 0
        try:
            while sent < 64 << 20:  # 64 MiB of request head, fast (the deadline is 1 s)
                s.sendall(line * 64)
                sent += len(line) * 64
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = _read_until_closed(s)
        except ConnectionResetError:
            answer = b""
    after = _peak_kb(slow)
    assert sent < 64 << 20, "all 64 MiB of head were taken in"
    if answer:  # the answer can be lost to the reset of a socket closed with unread bytes
        status, body = _status_and_body(answer)
        assert status == 431
        assert body["error"]["code"] == "headers_too_large"  # type: ignore[index]
    assert after - before < 32 << 10, f"the server held the head: {before} → {after} kB"
    _health_ok(slow)


def test_a_chunked_body_in_small_chunks_is_still_read(slow: LiveServer) -> None:
    body = b" " * (256 << 10)  # framing of 16-byte chunks: 96 kB, over the 64 kB head cap
    with _connect(slow) as s:
        framed = b"".join(b"10\r\n" + body[i:i + 16] + b"\r\n" for i in range(0, len(body), 16))
        s.sendall(b"POST /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\nX-Trailer: 1\r\n\r\n")
        answer = _read_until_closed(s)
    status, _ = _status_and_body(answer)
    assert status == 405  # the body was read whole, then the route said no to the method


def _span(tool: str, span_id: str) -> bytes:
    start = time.time_ns()
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "cut-agent"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b" * 16, "spanId": span_id, "name": f"execute_tool {tool}",
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": tool}}]}]}]}]}
    ).encode()


def test_a_body_cut_short_by_a_disconnect_is_not_acted_on(slow: LiveServer) -> None:
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

    token = slow.token("cut-collector", "submit").encode()
    body = _span("cut_short", "1a" * 8)
    with _connect(slow) as s:  # says 100 bytes more than it sends, then hangs up
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                  b"application/json\r\nAuthorization: Bearer " + token + b"\r\n"
                  b"Content-Length: " + str(len(body) + 100).encode() + b"\r\n\r\n" + body)
        time.sleep(0.2)
    time.sleep(1.0)
    with slow.client(token.decode()) as c:  # a whole request after it is stored
        assert c.post("/v1/traces", content=_span("whole", "2b" * 8),
                      headers={"Content-Type": "application/json"}).status_code == 200
    tools = [e.get("tool") for e in TelemetryStore(slow.home).events()]
    assert "whole" in tools
    assert "cut_short" not in tools, "the server acted on a request it never received whole"


class _BigAnswers:
    """An app whose answer (32 MiB) is far larger than any buffer (the API's answers to a
    client without a token are not), recording how each request's sends ended."""

    def __init__(self) -> None:
        import threading

        self.finished = threading.Event()
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        size, chunk = 32 << 20, b"x" * (64 << 10)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(size).encode())]})
            for _ in range(size // len(chunk)):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except BaseException as e:
            self.errors.append(e)
            raise
        finally:
            self.finished.set()  # the first request's task is free


@contextlib.contextmanager
def _in_process(app: Any, write_timeout: float) -> Iterator[tuple[str, int]]:
    """The server's own protocol under uvicorn in a thread of this process, on loopback."""
    import threading

    import uvicorn

    from ouroboros.interfaces.http.server import bind, guarded_protocol

    listener = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, lifespan="off", log_level="critical", timeout_keep_alive=600,
                            http=guarded_protocol(600.0, 100, write_timeout=write_timeout))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + BOUND
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield listener.getsockname()
    finally:
        server.should_exit = True
        thread.join(BOUND)
        listener.close()


def _slow_reader(address: tuple[str, int]) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(address)
    return s


def test_a_client_that_never_reads_its_answers_is_disconnected() -> None:
    app = _BigAnswers()
    with _in_process(app, write_timeout=1.0) as address, _slow_reader(address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read
        assert app.finished.wait(BOUND), "the answer to a client that reads nothing never ends"
        assert app.errors == []
        s.settimeout(BOUND)
        with pytest.raises(ConnectionResetError):
            while s.recv(1 << 20):  # what was buffered, then the reset
                pass


def test_a_pipelining_client_that_hangs_up_leaves_no_error() -> None:
    import struct

    app = _BigAnswers()
    with _in_process(app, write_timeout=600.0) as address, _slow_reader(address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3)
        time.sleep(0.5)  # the first answer waits for the socket to drain
        assert not app.finished.is_set()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset
        assert app.finished.wait(BOUND)
    assert app.errors == []  # its sends returned quietly: there is no one to answer


def test_a_pipelined_flood_is_answered_in_part_and_not_held(tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    server = start(home, "--no-scheduler")
    request = b"GET /api/v1/missing HTTP/1.1\r\nHost: localhost\r\n\r\n"
    flood = request * ((1 << 20) // len(request))  # 1 MiB: 20,000 requests
    try:
        before = _peak_kb(server)
        socks = []
        for _ in range(20):  # never read: the answers back up, the requests queue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(_address(server))
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.send(flood)
            socks.append(s)
        time.sleep(2.0)
        after = _peak_kb(server)
        for s in socks:
            s.close()
        assert after - before < 48 << 10, f"the queued requests were held: {before} → {after} kB"
        with _connect(server) as s:  # read as it comes: some answered, then closed
            s.sendall(flood[: len(request) * 2000])
            answer = _read_until_closed(s)
        answered = answer.count(b"HTTP/1.1 404")
        assert 1 <= answered < 2000
        assert answer.count(b"HTTP/1.1 ") == answered
        assert answer.rstrip(b"}").rfind(b"connection: close") > answer.rfind(b"HTTP/1.1 404")
        _health_ok(server)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


def test_a_few_pipelined_requests_are_all_answered(slow: LiveServer) -> None:
    with _connect(slow) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 10)
        answer = _read_until_closed(s)  # closed by the 1 s keep-alive timeout after the last
    assert answer.count(b"HTTP/1.1 200") == 10
    assert b"connection: close" not in answer.lower()


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked", "x-foo, chunked"])
def test_a_transfer_coding_other_than_chunked_is_501(slow: LiveServer, coding: str) -> None:
    import gzip

    token = slow.token("coder", "submit").encode()
    inner = gzip.compress(_span("gzipped", "3c" * 8))
    with _connect(slow) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nAuthorization: Bearer " + token + b"\r\n"
                  b"Transfer-Encoding: " + coding.encode() + b"\r\n\r\n"
                  + b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n")
        answer = _read_until_closed(s)
    status, body = _status_and_body(answer)
    assert status == 501, answer  # the server does not decode it: it must not read it as is
    assert body["error"]["code"] == "not_implemented"  # type: ignore[index]


def test_the_connection_cap_stays_under_the_open_file_limit(tmp_path: Path) -> None:
    """With 300 files allowed and --max-connections 1000, a flood of idle connections used
    every descriptor: a new client was dropped without an answer, and the ledger's own
    files could not be opened. The cap is lowered to fit, with a warning."""
    import os
    import resource
    import subprocess
    import sys

    home = new_workspace(tmp_path / "ws")
    log = tmp_path / "server.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ouroboros", "serve", "--home",
                                 str(home), "--port", "0", "--json", "--no-scheduler",
                                 "--header-timeout", "600", "--max-connections", "1000"],
                                stdout=subprocess.PIPE, stderr=err, preexec_fn=limit,
                                env={**os.environ})
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line, log.read_text()
        url = json.loads(line)["listening"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        held = []
        try:
            for _ in range(290):
                held.append(socket.create_connection((host, int(port)), timeout=BOUND))
            time.sleep(1.0)
            with socket.create_connection((host, int(port)), timeout=BOUND) as extra:
                answer = _read_until_closed(extra)  # answered at once, not dropped
            assert answer, "a new client was dropped without an answer"
            status, body = _status_and_body(answer)
            assert status == 503
            assert body["error"]["code"] == "unavailable"  # type: ignore[index]
        finally:
            for s in held:
                s.close()
        assert "--max-connections" in log.read_text()  # the lowered cap is said
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()
