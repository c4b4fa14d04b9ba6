"""Slack slash commands mounted in a real `ouro serve`: signed requests over loopback
decide; forged, stale, replayed, unsigned, oversized and malformed ones are refused and
decide nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from ouroboros.capabilities.improve.proposals.slack import MAX_BODY, signature

from .conftest import new_workspace
from .live import LiveServer, start
from .test_api_improve import propose

SECRET = "e3b0c44298fc1c149afbf4c8996fb924-slack-test"
PATH = "/slack/commands"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = new_workspace(tmp_path_factory.mktemp("slack") / "ws")
    (home / "ouro.toml").write_text('[improve.chat]\nsigning_secret_env = "OURO_TEST_SLACK"\n'
                                    "max_skew_s = 120\n")
    server = start(home, "--no-scheduler", env={"OURO_TEST_SLACK": SECRET})
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def form(text: str, user: str = "alice") -> bytes:
    return urlencode({"command": "/ouro", "text": text, "user_name": user,
                      "team_id": "T1", "response_url": "https://hooks.slack.com/x"}).encode()


def headers(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(secret, stamp, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def post(live: LiveServer, body: bytes, hdrs: dict[str, str]) -> httpx.Response:
    with live.client() as c:  # no bearer token: Slack cannot send one
        return c.post(PATH, content=body, headers=hdrs)


def status_of(live: LiveServer, pid: str) -> str:
    with live.client(live.token("reader", "read")) as c:
        return str(c.get(f"/api/v1/proposals/{pid}").json()["status"])


def test_a_signed_command_answers_and_approves(live: LiveServer) -> None:
    pid = propose(live.home, "Document slack")
    listed = post(live, form("list"), headers(form("list")))
    assert listed.status_code == 200, listed.text
    assert listed.json()["response_type"] == "ephemeral" and pid in listed.json()["text"]
    body = form(f"approve {pid}", "bob")
    ok = post(live, body, headers(body))
    assert ok.status_code == 200, ok.text
    assert status_of(live, pid) == "implemented"
    with live.client(live.token("reader", "read")) as c:
        shown = c.get(f"/api/v1/proposals/{pid}").json()
    assert shown["review"]["reviewer"] == "slack:bob"
    again = post(live, body, headers(body, int(time.time()) + 1))  # signed anew: answered,
    assert again.status_code == 200 and status_of(live, pid) == "implemented"  # no change


def forgeries(pid: str) -> list[tuple[str, bytes, dict[str, str], int]]:
    body = form(f"approve {pid}", "mallory")
    now = int(time.time())
    good = headers(body, now)
    big = form(f"approve {pid}") + b"&pad=" + b"x" * (MAX_BODY + 10)
    huge = b"x" * (2 << 20)  # over the server's body cap
    return [
        ("no headers", body, {"Content-Type": "application/x-www-form-urlencoded"}, 401),
        ("no signature", body, {"X-Slack-Request-Timestamp": str(now)}, 401),
        ("no timestamp", body, {"X-Slack-Signature": good["X-Slack-Signature"]}, 401),
        ("zero signature", body, {**good, "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        ("wrong secret", body, headers(body, now, "not-the-secret"), 401),
        ("body changed after signing", body.replace(b"mallory", b"malloryy"), good, 401),
        ("another command under a real signature", form(f"reject {pid} no"), good, 401),
        ("replayed from 10 min ago", body, headers(body, now - 600), 401),
        ("from the future", body, headers(body, now + 600), 401),
        ("timestamp not a number", body, {**good, "X-Slack-Request-Timestamp": "1e9"}, 401),
        ("unicode digits", body, {**headers(body, now), "X-Slack-Request-Timestamp":
                                  "\u0661" * 10}, 401),
        ("signed but over the handler's cap", big, headers(big, now), 401),
        ("over the server's body cap", huge, headers(huge, now), 413),
        ("signed but not UTF-8", b"\xff\xfe" * 8, headers(b"\xff\xfe" * 8, now), 400),
    ]


def test_forged_stale_replayed_and_oversized_requests_decide_nothing(live: LiveServer) -> None:
    pid = propose(live.home, "Document forgeries")
    for why, body, hdrs, code in forgeries(pid):
        try:
            r = post(live, body, hdrs)
        except UnicodeEncodeError:  # httpx refuses non-latin-1 headers: send them raw
            r = raw_post(live, body, hdrs)
        assert r.status_code == code, (why, r.status_code, r.text)
        error = r.json()["error"]
        assert error["code"] in ("unauthorized", "bad_request", "payload_too_large"), why
        assert status_of(live, pid) == "pending", why
    # the first real request is accepted once; the same bytes again are a replay
    body = form("status")
    hdrs = headers(body)
    assert post(live, body, hdrs).status_code == 200
    replay = post(live, body, hdrs)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]["message"]
    assert status_of(live, pid) == "pending"


def test_a_timestamp_of_latin1_digits_is_401_not_a_crash(live: LiveServer) -> None:
    """Bytes B9 B2 B3 read as Latin-1 are '¹²³': str.isdigit() says yes, int() raises. An
    unsigned request with such a timestamp was a 500 (before any signature check)."""
    pid = propose(live.home, "Document superscripts")
    body = form(f"approve {pid}", "mallory")
    good = headers(body)
    for stamp in (b"\xb9\xb2\xb3", b"\xb2" * 10):
        with live.client() as c:
            r = c.post(PATH, content=body, headers={**good, "X-Slack-Request-Timestamp": stamp})
        assert r.status_code == 401, (stamp, r.status_code, r.text)
        error = r.json()["error"]
        assert error["code"] == "unauthorized"
        assert error["message"] == "missing or malformed timestamp"
    assert status_of(live, pid) == "pending"


def raw_post(live: LiveServer, body: bytes, hdrs: dict[str, str]) -> Any:
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    lines = [f"POST {PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in hdrs.items())]
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall("\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split()[1]), content=rest)


def test_without_a_secret_every_request_is_refused(tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    server = start(home, "--no-scheduler", env={"SLACK_SIGNING_SECRET": ""})
    try:
        body = form("list")
        for hdrs in (headers(body), headers(body, secret="")):
            r = post(server, body, hdrs)
            assert r.status_code == 401, r.text
            assert "no signing secret" in r.json()["error"]["message"]
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err
