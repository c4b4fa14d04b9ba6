"""The chat inbound adapter: Slack-style slash commands posted to a webhook.

:func:`handle_slash_command` is a plain function (raw body + headers in, status + JSON
out) that an HTTP router mounts as it is. It checks Slack's request signature before it
reads anything else: ``X-Slack-Signature = v0=HMAC-SHA256(secret, "v0:" + timestamp +
":" + body)``, compared in constant time, with ``X-Slack-Request-Timestamp`` within
``max_skew_s`` of now; a signature already seen inside that window is a replay and is
refused (the cache of seen signatures is a small JSON file, pruned as they age out).
The text after the slash command is the chat grammar of :mod:`.chat`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ouroboros.capabilities.improve.proposals.chat import USAGE, handle_chat
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
from ouroboros.storage.files import flocked, read_json_file, replace_file

MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class SlashResponse:
    status: int
    body: dict[str, Any]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


class ReplayCache:
    """Signatures seen in the last ``max_skew_s`` seconds, shared by processes (a lock file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def seen_before(self, sig: str, now: float, max_skew_s: int) -> bool:
        """Record ``sig``; True if it was already there (a replay)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with flocked(self.path.with_suffix(".lock"), mode=0o644):
            seen: dict[str, Any] = {}
            # the signatures of ten minutes (~100 bytes each); a link, FIFO, huge or torn
            # file is not the cache's and is replaced: no request may wait on it
            with contextlib.suppress(OSError):
                seen = read_json_file(self.path, 64 << 20) or {}
            seen = {k: t for k, t in seen.items()
                    if isinstance(t, (int, float)) and now - t <= 2 * max_skew_s}
            if sig in seen:
                return True
            seen[sig] = now
            replace_file(self.path, json.dumps(seen))
        return False


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")


def verify(body: bytes, headers: Mapping[str, str], secret: str, now: float,
           max_skew_s: int, replays: ReplayCache) -> str | None:
    """Why the request is refused, or None when it is signed, fresh and not a replay."""
    if not secret:
        return "no signing secret configured"
    if len(body) > MAX_BODY:
        return "body too large"
    timestamp = _header(headers, "X-Slack-Request-Timestamp").strip()
    given = _header(headers, "X-Slack-Signature").strip()
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "missing or malformed timestamp"
    if abs(now - int(timestamp)) > max_skew_s:
        return "stale timestamp"
    if not hmac.compare_digest(given.encode("ascii", "replace"),
                               signature(secret, timestamp, body).encode("ascii")):
        return "bad signature"
    if replays.seen_before(given, now, max_skew_s):
        return "replayed request"
    return None


def handle_slash_command(body: bytes, headers: Mapping[str, str], *, secret: str, now: float,
                         loop: Callable[[], ImproveLoop], replays: ReplayCache,
                         max_skew_s: int = 300) -> SlashResponse:
    """One slash-command POST -> (HTTP status, Slack message JSON).

    The loop is made only after the request verifies, so an unsigned request costs no
    repository access.
    """
    refused = verify(body, headers, secret, now, max_skew_s, replays)
    if refused is not None:
        return SlashResponse(401, {"error": refused})
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return SlashResponse(400, {"error": "the body is not a form"})
    text = (form.get("text") or [""])[0]
    user = (form.get("user_name") or form.get("user_id") or ["chat"])[0][:64]
    # "/ouro proposals list" and "/proposals list" both work
    command = text if text.strip().startswith("proposals") else f"proposals {text}"
    reply = handle_chat(command.strip(), loop(), user=f"slack:{user}")
    return SlashResponse(200, {"response_type": "ephemeral", "text": reply or USAGE})
