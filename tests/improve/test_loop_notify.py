"""Notification batching, the webhook transport on a real HTTP server, chat commands."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.capabilities.improve.proposals.chat import ChatError, handle_chat, parse_command
from ouroboros.capabilities.improve.proposals.notify import (
    Message,
    NotificationBatcher,
    NotifyError,
    RecordingNotifier,
    WebhookNotifier,
)

from .loopkit import T0, Harness, tool_events

NOON = datetime(2026, 1, 10, 12, 20, tzinfo=UTC)


@pytest.fixture
def batcher(tmp_path: Path) -> tuple[NotificationBatcher, RecordingNotifier]:
    rec = RecordingNotifier()
    return NotificationBatcher(tmp_path / "n.json", rec), rec


def test_critical_is_sent_immediately(batcher: Any) -> None:
    b, rec = batcher
    sent = b.proposal_created("a1", "Data loss", "critical", NOON, pending=1)
    assert [m.severity for m in sent] == ["critical"] and rec.sent == sent


def test_high_is_batched_to_the_next_hour(batcher: Any) -> None:
    b, _ = batcher
    assert b.proposal_created("a1", "One", "high", NOON, pending=1) == []
    assert b.proposal_created("a2", "Two", "high", NOON + timedelta(minutes=20), pending=2) == []
    assert b.flush(NOON + timedelta(minutes=39), pending=2) == []
    (msg,) = b.flush(NOON + timedelta(minutes=40), pending=2)
    assert msg.title == "2 high-severity proposal(s)" and "a1" in msg.body and "a2" in msg.body
    assert b.flush(NOON + timedelta(hours=3), pending=2) == []


def test_medium_and_low_wait_for_the_9am_digest(batcher: Any) -> None:
    b, _ = batcher
    b.proposal_created("m1", "Medium", "medium", NOON, pending=1)
    b.proposal_created("l1", "Low", "low", NOON, pending=2)
    assert b.flush(NOON + timedelta(hours=20), pending=2) == []  # 08:20 next day
    (digest,) = b.flush(NOON + timedelta(hours=21), pending=2)  # 09:20
    assert digest.severity == "digest" and "m1" in digest.body and "l1" in digest.body


def test_more_than_five_pending_sends_one_summary(batcher: Any) -> None:
    b, rec = batcher
    for i in range(5):
        b.proposal_created(f"h{i}", f"High {i}", "high", NOON, pending=i + 1)
    sent = b.proposal_created("c1", "Critical", "critical", NOON, pending=6)
    assert [m.title for m in sent] == ["6 proposals pending review"]
    assert rec.sent == sent


def test_queue_survives_a_restart(tmp_path: Path) -> None:
    b = NotificationBatcher(tmp_path / "n.json", RecordingNotifier())
    b.proposal_created("a1", "One", "high", NOON, pending=1)
    rec = RecordingNotifier()
    again = NotificationBatcher(tmp_path / "n.json", rec)
    assert len(again.flush(NOON + timedelta(hours=1), pending=1)) == 1


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"body": json.loads(body), "type": self.headers["Content-Type"]})
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received, _Hook.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_posts_json_to_a_real_server(hook: str) -> None:
    WebhookNotifier(hook).send(Message("New proposal", "review a1", "critical"))
    (got,) = _Hook.received
    assert got["type"] == "application/json"
    assert got["body"] == {"title": "New proposal", "body": "review a1", "severity": "critical",
                           "text": "New proposal\nreview a1"}


def test_webhook_error_status_raises(hook: str) -> None:
    _Hook.status = 500
    with pytest.raises(NotifyError, match="500"):
        WebhookNotifier(hook).send(Message("x", "y"))


def test_webhook_unreachable_raises() -> None:
    with pytest.raises(NotifyError, match="failed"):
        WebhookNotifier("http://127.0.0.1:9/none", timeout=1).send(Message("x", "y"))


def test_webhook_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("file:///etc/passwd")


def test_loop_notifies_through_the_webhook(tmp_path: Path, hook: str) -> None:
    h = Harness(tmp_path)
    h.loop.notifications.notifier = WebhookNotifier(hook)
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    (out,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    assert _Hook.received == []  # high: batched to the next full hour
    h.clock.advance(hours=1)
    h.loop.tick()
    assert out.proposal.id in _Hook.received[0]["body"]["body"]


@pytest.mark.parametrize(("text", "expected"), [
    ("proposals list", ("list", None, None, "pending")),
    ("/proposals list all", ("list", None, None, "all")),
    ("proposals show a1b2", ("show", "a1b2", None, None)),
    ("proposals approve a1b2", ("approve", "a1b2", None, None)),
    ("proposals reject a1b2 too risky for now", ("reject", "a1b2", "too risky for now", None)),
    ('proposals reject a1b2 "quoted reason"', ("reject", "a1b2", "quoted reason", None)),
    ("Proposals STATUS", ("status", None, None, None)),
])
def test_chat_commands_parse(text: str, expected: tuple[Any, ...]) -> None:
    cmd = parse_command(text)
    assert cmd is not None
    assert (cmd.action, cmd.proposal_id, cmd.reason, cmd.status) == expected


@pytest.mark.parametrize(("text", "error"), [
    ("proposals reject a1b2", "a reason is required"),
    ("proposals approve", "usage: proposals approve <id>"),
    ("proposals approve a b", "usage: proposals approve <id>"),
    ("proposals frobnicate", "unknown command 'frobnicate'"),
    ("proposals list weird", "unknown status 'weird'"),
])
def test_bad_chat_commands_say_the_usage(text: str, error: str) -> None:
    with pytest.raises(ChatError, match=error):
        parse_command(text)


def test_other_messages_are_ignored() -> None:
    assert parse_command("hello there") is None
    assert parse_command("") is None


def test_chat_drives_the_loop(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    (out,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    pid = out.proposal.id
    assert pid in (handle_chat("proposals list", h.loop) or "")
    assert "```diff" in (handle_chat(f"proposals show {pid}", h.loop) or "")
    assert "no proposal 'zzzz'" in (handle_chat("proposals approve zzzz", h.loop) or "")
    reply = handle_chat(f"proposals approve {pid}", h.loop, user="carol") or ""
    assert "implemented" in reply
    assert h.loop.get(pid).review.reviewer == "carol"  # type: ignore[union-attr]
    assert handle_chat("what's up", h.loop) is None


def test_a_failing_webhook_never_breaks_the_loop_and_is_retried(tmp_path: Path, hook: str) -> None:
    h = Harness(tmp_path)
    h.loop.notifications.notifier = WebhookNotifier(hook)
    _Hook.status = 503
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    (out,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    h.clock.advance(hours=1)
    h.loop.tick()  # the hourly batch is due; the webhook answers 503
    assert h.loop.notifications.queue.items and "503" in h.loop.notifications.queue.last_error
    _Hook.status = 200
    h.loop.tick()
    assert h.loop.notifications.queue.items == []
    assert out.proposal.id in _Hook.received[-1]["body"]["body"]


def test_undeliverable_alert_is_queued_as_critical(tmp_path: Path) -> None:
    class Down:
        def send(self, message: Message) -> None:
            raise NotifyError("down")

    b = NotificationBatcher(tmp_path / "n.json", Down())
    b.alert(Message("Proposal x auto-reverted", "details", "critical"), NOON)
    rec = RecordingNotifier()
    b.notifier = rec
    assert [m.title for m in b.flush(NOON, pending=0)] == ["Proposal x auto-reverted"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_chat_parser_never_crashes(text: str) -> None:
    try:
        parse_command(text)
    except ChatError as e:
        assert str(e)
