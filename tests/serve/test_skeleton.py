"""The skeleton over real HTTP: health without a token, the one error shape, auth, limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ouroboros.interfaces.http.limits import LOOPBACK_NAMES
from ouroboros.interfaces.http.server import allowed_hosts, check_bind, is_loopback
from ouroboros.kernel.errors import UsageError

from .conftest import new_workspace
from .live import LiveServer, start


def test_health_needs_no_token(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_a_request_without_a_token_gets_401_and_the_error_shape(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/api/v1/whoami")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert set(r.json()) == {"error"}
    assert r.json()["error"]["code"] == "unauthorized"


def test_a_token_names_its_holder_and_role(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.get("/api/v1/whoami")
    assert r.status_code == 200
    assert r.json() == {"name": "reader", "role": "read", "key": None}


def test_unknown_routes_and_methods_have_the_error_shape(live: LiveServer) -> None:
    with live.client() as c:
        missing = c.get("/api/v1/no-such-thing")
        wrong = c.delete("/api/v1/health")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_openapi_and_docs_are_served(live: LiveServer) -> None:
    with live.client() as c:
        schema = c.get("/openapi.json").json()
        docs = c.get("/docs")
    assert "/api/v1/health" in schema["paths"]
    assert "ErrorBody" in schema["components"]["schemas"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_a_foreign_host_header_is_refused(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/api/v1/health", headers={"Host": "attacker.example"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_host"


@pytest.mark.parametrize("hosts", [(b"attacker.example", b"127.0.0.1"),
                                   (b"127.0.0.1", b"attacker.example"),
                                   (b"127.0.0.1", b"localhost")])
def test_a_request_with_two_host_headers_is_refused(live: LiveServer,
                                                    hosts: tuple[bytes, bytes]) -> None:
    """RFC 9112 3.2: more than one Host is a 400. The guard checked the last one while the
    routes (and the console's origin check) read the first: a foreign name first and a
    loopback name last was served."""
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    token = live.token("reader", "read").encode()
    request = (b"GET /api/v1/whoami HTTP/1.1\r\nHost: " + hosts[0] + b"\r\nHost: " + hosts[1]
               + b"\r\nAuthorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer[:300]
    assert httpx.Response(400, content=body).json()["error"] == {
        "code": "bad_host", "message": "the request has more than one Host header",
        "hint": "send one Host header"}
    with live.client(live.token("reader", "read")) as c:
        assert c.get("/api/v1/whoami").status_code == 200


def _raw(live: LiveServer, request: bytes) -> tuple[bytes, bytes]:
    """(status, body) of one request sent as these bytes."""
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b" ", 2)[1], body


@pytest.mark.parametrize("target", [b"http://evil.example/api/v1/whoami",
                                    b"http://evil.example:80/api/v1/whoami",
                                    b"https://evil.example/api/v1/whoami",
                                    b"http://user@evil.example/api/v1/whoami",
                                    b"http://127.0.0.1.evil.example/api/v1/whoami",
                                    b"http://[2001:db8::1]/api/v1/whoami"])
def test_an_absolute_form_target_naming_a_foreign_host_is_refused(live: LiveServer,
                                                                  target: bytes) -> None:
    """RFC 9112 3.2.2: with an absolute-form target the server uses the target's authority
    and ignores Host. The parser dropped the authority and the routes served the path, so
    ``GET http://evil.example/... `` with ``Host: 127.0.0.1`` went past the DNS-rebinding
    check that a foreign Host header meets."""
    token = live.token("reader", "read").encode()
    status, body = _raw(live, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Authorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
    assert status == b"400", body[:300]
    assert httpx.Response(400, content=body).json()["error"]["code"] == "bad_host"


def test_an_absolute_form_target_naming_this_server_is_served(live: LiveServer) -> None:
    token = live.token("reader", "read").encode()
    target = live.url.encode() + b"/api/v1/whoami"
    status, body = _raw(live, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Authorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
    assert status == b"200", body[:300]
    # the authority decides, not a foreign Host header sent with it
    status, body = _raw(live, b"GET " + target + b" HTTP/1.1\r\nHost: evil.example\r\n"
                        b"Authorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
    assert status == b"200", body[:300]


def _answer_of(live: LiveServer, request: bytes) -> bytes:
    """The status of one answer on a new connection (read up to its Content-Length: an
    upgrade request's connection is not closed after it)."""
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := s.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:")]
        while length and len(body) < length[0] and (chunk := s.recv(65536)):
            body += chunk
    return head.split(b" ", 2)[1] if head else b""


def test_upgrade_and_malformed_requests_cannot_flood_the_log(live: LiveServer) -> None:
    """uvicorn logs two warnings for every request asking for an upgrade it cannot do
    (``Upgrade: websocket`` without a WebSocket library, ``h2c``) and one for every request
    it cannot parse: 184 bytes of log per request, without limit, for any client that can
    connect (a disk-filling vector). The lines are now rate-limited; the requests are
    answered as before (the route for an upgrade request, 400 for a malformed one)."""
    upgrades = [b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n",
                b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, "
                b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"
                b"\r\n\r\n"]
    malformed = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n"
    before = live.log.stat().st_size
    for i in range(500):
        assert _answer_of(live, upgrades[i % 2]) == b"200"
        assert _answer_of(live, malformed) == b"400"
    with live.client() as c:  # (and the log is written: the server is still serving)
        assert c.get("/api/v1/health").status_code == 200
    grown = live.log.stat().st_size - before
    assert grown < 4096, live.stderr()[-2000:]


def test_a_body_over_the_cap_is_413_before_it_is_read(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.post("/api/v1/whoami", content=b"x" * (2 << 20),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("tail", [b'"\\' * 480_000, b'"a\\"' * 240_000, b'"' + b"\\a" * 480_000])
def test_an_unterminated_string_does_not_stall_the_depth_check(live: LiveServer,
                                                               tail: bytes) -> None:
    """The depth check strips strings with a regex; a string that never closes failed
    it and the search retried from every later quote: quadratic, on the event loop, before
    any token is checked. 64 kB of `"\\` stalled every request for 13 s; 1 MB for most of an
    hour. Now refused as fast as any body, and other requests are answered meanwhile."""
    import threading
    import time

    body = b"[" * 65 + tail
    answers: list[httpx.Response] = []
    attack = threading.Thread(target=lambda: answers.append(httpx.post(
        live.url + "/api/v1/health", content=body, timeout=60.0)))
    attack.start()
    started = time.monotonic()
    with live.client() as c:
        assert c.get("/api/v1/health").status_code == 200
    attack.join(timeout=60.0)
    assert time.monotonic() - started < 10.0
    assert answers and answers[0].status_code == 400, answers
    assert answers[0].json()["error"]["code"] == "too_deep"


def test_the_server_keeps_serving_after_bad_requests(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as c:
        assert c.get("/api/v1/health").status_code == 200


def test_a_non_loopback_bind_is_refused_without_allow_remote(tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                        "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "--allow-remote" in r.stderr and "Traceback" not in r.stderr


def test_a_port_in_use_is_a_usage_error(live: LiveServer) -> None:
    port = live.url.rsplit(":", 1)[1]
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(live.home),
                        "--port", port, "--no-scheduler"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "cannot listen" in r.stderr


def test_loopback_names_and_remote_binds() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    with pytest.raises(UsageError):
        check_bind("0.0.0.0", allow_remote=False)
    check_bind("0.0.0.0", allow_remote=True)
    assert allowed_hosts("127.0.0.1", []) == LOOPBACK_NAMES
    assert allowed_hosts("0.0.0.0", []) is None
    assert allowed_hosts("0.0.0.0", ["ouro.example:443"]) == LOOPBACK_NAMES | {"ouro.example"}
    assert "[fd00::5]" in (allowed_hosts("fd00::5", ["x.example"]) or ())


def test_a_damaged_token_file_fails_closed_without_saying_where(tmp_path: Path) -> None:
    from ouroboros.interfaces.http.tokens import TokenStore

    home = new_workspace(tmp_path / "ws")
    token, _ = TokenStore(home).new("one", "read")
    server = start(home, "--no-scheduler")
    try:
        with server.client(token) as c:
            assert c.get("/api/v1/whoami").status_code == 200
            (home / "serve" / "tokens.json").write_text("{damaged")
            r = c.get("/api/v1/whoami")
            assert r.status_code == 503 and str(home) not in r.text
            assert c.get("/api/v1/health").status_code == 200
    finally:
        code, err = server.stop()
    assert code == 0 and "token store unreadable" in err


def test_the_log_rate_limit_keeps_a_burst_counts_the_rest_and_passes_errors() -> None:
    import logging

    from ouroboros.interfaces.http.server import RateLimitedLog

    limit = RateLimitedLog(burst=2, window=3600.0)

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, None, None)

    assert [limit.filter(record("Unsupported upgrade request.")) for _ in range(5)] == [
        True, True, False, False, False]
    assert limit.filter(record("another message"))
    assert limit.filter(record("Unsupported upgrade request.", logging.ERROR))
    start, n, dropped = limit._seen["Unsupported upgrade request."]
    limit._seen["Unsupported upgrade request."] = (start - 3600.0, n, dropped)  # a window on
    late = record("Unsupported upgrade request.")
    assert limit.filter(late) and "3 more like this" in late.getMessage()
