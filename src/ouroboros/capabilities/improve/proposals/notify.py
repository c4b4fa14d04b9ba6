"""Notifications with the seed's batching, behind one notifier interface.

Critical proposals are sent at once; high ones are batched to the next full hour;
medium and low go into the daily digest at 09:00 UTC; when more than five proposals are pending, one
summary replaces the individual messages. The queue is persisted in the workspace so
batching survives restarts. Transports: stdout (default) or a webhook POST.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from ouroboros.capabilities.improve.proposals.proposal import iso, parse_time, read_state_or
from ouroboros.storage.files import replace_file

HIGH_BATCH = timedelta(hours=1)
DIGEST_AT = time(9, 0)
SUMMARY_THRESHOLD = 5


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: str = "info"


class NotifyError(RuntimeError):
    """The transport could not deliver a message."""


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


class StdoutNotifier:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, message: Message) -> None:
        out = self.stream or sys.stdout
        out.write(f"[{message.severity}] {message.title}\n{message.body}\n")


class WebhookNotifier:
    """POSTs ``{"title", "body", "severity", "text"}`` as JSON (Slack/LibreChat-style)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        self.url = url
        self.timeout = timeout

    def send(self, message: Message) -> None:
        payload = {**asdict(message), "text": f"{message.title}\n{message.body}"}
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if not 200 <= response.status < 300:
                    raise NotifyError(f"webhook answered HTTP {response.status}")
        except urllib.error.URLError as e:
            raise NotifyError(f"webhook {self.url} failed: {e}") from e


class RecordingNotifier:
    """Keeps messages in memory: for demos and for callers that render them elsewhere."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)


def notifier_from_env(stream: TextIO | None = None) -> Notifier:
    """A webhook when ``OURO_WEBHOOK_URL`` is set, else text on ``stream`` (stdout)."""
    url = os.environ.get("OURO_WEBHOOK_URL")
    return WebhookNotifier(url) if url else StdoutNotifier(stream)


@dataclass
class _Queue:
    items: list[dict[str, str]] = field(default_factory=list)  # id, title, severity, queued
    last_error: str = ""


def next_digest(after: datetime) -> datetime:
    """The first 09:00 UTC digest strictly after ``after``."""
    at = after.replace(hour=DIGEST_AT.hour, minute=DIGEST_AT.minute, second=0, microsecond=0)
    return at if at > after else at + timedelta(days=1)


def next_hour(after: datetime) -> datetime:
    """The first full hour strictly after ``after``: when an hourly batch goes out."""
    return after.replace(minute=0, second=0, microsecond=0) + HIGH_BATCH


def due_at(severity: str, queued: datetime) -> datetime:
    if severity == "critical":
        return queued
    if severity == "high":
        return next_hour(queued)
    return next_digest(queued)


class NotificationBatcher:
    def __init__(self, path: Path, notifier: Notifier) -> None:
        self.path = Path(path)
        self.notifier = notifier
        self.queue = read_state_or(self.path, lambda data: _Queue(**data), _Queue)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps(asdict(self.queue), indent=2))

    def proposal_created(self, proposal_id: str, title: str, severity: str, now: datetime,
                         pending: int) -> list[Message]:
        """Queue a new proposal; critical ones (and the over-threshold summary) go at once."""
        self.queue.items.append(
            {"id": proposal_id, "title": title, "severity": severity, "queued": iso(now)}
        )
        self._save()
        return self.flush(now, pending)

    def alert(self, message: Message, now: datetime) -> None:
        """Out-of-band alerts (auto-revert, failed merge) bypass batching; one that cannot
        be delivered is queued as critical and retried by the next flush."""
        try:
            self.notifier.send(message)
        except NotifyError as e:
            self.queue.items.append({"id": "-", "title": message.title, "body": message.body,
                                     "severity": "critical", "queued": iso(now)})
            self.queue.last_error = str(e)
            self._save()

    def flush(self, now: datetime, pending: int) -> list[Message]:
        """Send what is due at ``now``; returns what was sent."""
        due = [i for i in self.queue.items
               if now >= due_at(i["severity"], parse_time(i["queued"]))]
        if not due:
            return []
        if pending > SUMMARY_THRESHOLD:
            lines = [f"- [{i['severity']}] {i['id']}: {i['title']}" for i in due]
            messages = [Message(f"{pending} proposals pending review",
                                "\n".join(lines) + "\nRun `ouro proposals list`.", "summary")]
        else:
            messages = self._messages(due)
        for sent, message in enumerate(messages):
            try:
                self.notifier.send(message)
            except NotifyError as e:  # at-least-once: everything due stays queued
                self.queue.last_error = str(e)
                self._save()
                return messages[:sent]
        self.queue.items = [i for i in self.queue.items if i not in due]
        self.queue.last_error = ""
        self._save()
        return messages

    @staticmethod
    def _messages(due: list[dict[str, str]]) -> list[Message]:
        messages = []
        for item in (i for i in due if i["severity"] == "critical"):
            if "body" in item:  # a queued alert
                messages.append(Message(item["title"], item["body"], "critical"))
                continue
            messages.append(Message(f"CRITICAL proposal {item['id']}: {item['title']}",
                                    f"Review now: `ouro proposals show {item['id']}`", "critical"))
        high = [i for i in due if i["severity"] == "high"]
        if high:
            messages.append(Message(f"{len(high)} high-severity proposal(s)",
                                    "\n".join(f"- {i['id']}: {i['title']}" for i in high), "high"))
        rest = [i for i in due if i["severity"] in ("medium", "low")]
        if rest:
            messages.append(Message(
                f"Daily digest: {len(rest)} new proposal(s) pending review",
                "\n".join(f"- [{i['severity']}] {i['id']}: {i['title']}" for i in rest), "digest"))
        return messages
