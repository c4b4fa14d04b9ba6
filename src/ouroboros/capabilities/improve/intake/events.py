"""Telemetry event schema: the five event types of the self-improvement plan.

Events are flat JSON objects. Only the fields listed here are ever stored: any other
key (a prompt, a response, a user's words) is dropped on the way in, which is how
"user content is never captured" is enforced structurally rather than by hoping the
sanitizer recognises it. Category fields (``correction_type``, ``error_category``,
``reason_category``, ``error_code``) must be identifiers, so free text cannot ride
in through them either.

Timestamps are normalised to one fixed-width UTC form
(``YYYY-MM-DDTHH:MM:SS.mmmZ``) so that the analysis can compare and bucket them as
strings, without parsing a million datetimes.

Field names follow the plan; docs/telemetry.md maps each to its OpenTelemetry
semantic-convention name, and :data:`ALIASES` accepts those names on input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_TYPES = ("tool_call", "user_correction", "task_failure", "feedback", "escalation")

#: Fields every event may carry.
COMMON_FIELDS = (
    "timestamp",
    "event_type",
    "agent",
    "session_id",
    "trace_id",
    "span_id",
    "severity",
)

#: Required and optional fields per event type (beyond the common ones).
REQUIRED: dict[str, tuple[str, ...]] = {
    "tool_call": ("tool", "success"),
    "user_correction": ("agent", "correction_type"),
    "task_failure": ("task_name", "error_category"),
    "feedback": ("agent", "rating"),
    "escalation": ("agent", "reason_category"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "tool_call": ("error_code", "error_message", "latency_ms"),
    "user_correction": (),
    "task_failure": ("retry_count", "error_message"),
    "feedback": (),
    "escalation": (),
}

#: Input aliases: OpenTelemetry semantic-convention names and common spellings.
ALIASES = {
    "time": "timestamp",
    "ts": "timestamp",
    "type": "event_type",
    "gen_ai.agent.name": "agent",
    "gen_ai.tool.name": "tool",
    "tool_name": "tool",
    "error.type": "error_code",
    "exception.message": "error_message",
    "session.id": "session_id",
    "duration_ms": "latency_ms",
}

#: The ``source`` of events the runtime itself writes (its own spans, the spool, local
#: intake, ``ouro telemetry ingest``): the OTLP receiver stamps the submitting token's name
#: instead (`receiver.receive`). The field is the store's, never the sender's.
LOCAL_SOURCE = "local"
#: The source an event stored before sources were stamped is read as.
UNKNOWN_SOURCE = "unknown"


def source_of(event: Mapping[str, Any]) -> str:
    """Who submitted ``event``: the stamped ``source``, ``unknown`` for older events."""
    source = event.get("source")
    return source if isinstance(source, str) and source else UNKNOWN_SOURCE


SEVERITIES = ("critical", "high", "medium", "low")
RATINGS = ("up", "down")

_IDENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_.:/@ \-]{1,128}")
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
MAX_INPUT_MESSAGE = 4096  # cut before sanitizing (bounds its cost)
MAX_MESSAGE = 500  # cut after sanitizing (what is stored)


def cut_text(text: str, limit: int) -> str:
    """Shortens at a whitespace boundary, never inside a token.

    Cutting through a secret could leave a fragment too short for any rule to
    recognise; dropping the whole partial token (a token longer than ``limit``
    disappears entirely) cannot leak.
    """
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    return (head[:space] if space > 0 else "") + "…"


class EventError(ValueError):
    """An input record is not a valid telemetry event.

    The message names the field and the rule, never the offending value: reasons
    are printed and stored, and the value may be a secret.
    """


@dataclass(frozen=True)
class Normalised:
    """A validated event plus the names of input keys that were dropped."""

    event: dict[str, Any]
    dropped: tuple[str, ...]


def format_timestamp(moment: datetime) -> str:
    """The one stored timestamp form: fixed width, UTC, milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: object) -> datetime:
    """Accepts ISO 8601 (naive means UTC) or a Unix epoch in s, ms or ns."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise EventError("timestamp: expected ISO 8601 text or a Unix epoch number")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise EventError("timestamp: epoch must be a finite, non-negative number")
        seconds = float(value)
        if seconds > 1e17:
            seconds /= 1e9
        elif seconds > 1e11:
            seconds /= 1e3
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as e:
            raise EventError("timestamp: epoch out of range") from e
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as e:
            raise EventError("timestamp: not ISO 8601") from e
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise EventError("timestamp: expected ISO 8601 text or a Unix epoch number")


def canonical_timestamp(value: object) -> str:
    """Fast path for values already in stored form; full parse otherwise."""
    if isinstance(value, str) and len(value) == 24 and value[10] == "T" and value[23] == "Z":
        return value
    return format_timestamp(parse_timestamp(value))


def _text(name: str, value: object, pattern: re.Pattern[str] | None) -> str:
    if not isinstance(value, str):
        raise EventError(f"{name}: expected a string")
    if pattern is None:
        return cut_text(value, MAX_INPUT_MESSAGE)
    if not pattern.fullmatch(value):
        raise EventError(f"{name}: must match {pattern.pattern}")
    return value


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise EventError(f"{name}: expected true or false")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"{name}: expected a number")
    try:
        number = float(value)
    except OverflowError:
        raise EventError(f"{name}: must be a finite, non-negative number") from None
    if not math.isfinite(number) or number < 0:
        raise EventError(f"{name}: must be a finite, non-negative number")
    return number


def _rating(raw: Mapping[str, Any]) -> str:
    """The plan's ``thumbs_up/down`` arrives in several spellings; store one."""
    if "rating" in raw:
        value = raw["rating"]
        if isinstance(value, str) and value.lower() in ("up", "thumbs_up", "positive", "+1"):
            return "up"
        if isinstance(value, str) and value.lower() in ("down", "thumbs_down", "negative", "-1"):
            return "down"
        raise EventError("rating: expected up or down")
    if "thumbs_up" in raw:
        return "up" if _bool("thumbs_up", raw["thumbs_up"]) else "down"
    if "thumbs_down" in raw:
        return "down" if _bool("thumbs_down", raw["thumbs_down"]) else "up"
    raise EventError("feedback: missing rating (up or down)")


_CHECKS: dict[str, re.Pattern[str] | None] = {
    "agent": _NAME,
    "tool": _NAME,
    "task_name": _NAME,
    "session_id": _NAME,
    "error_code": _IDENT,
    "correction_type": _IDENT,
    "error_category": _IDENT,
    "reason_category": _IDENT,
    "trace_id": _HEX,
    "span_id": _HEX,
    "error_message": None,
}

#: Fields validated above as names or identifiers, never free text: what analysis groups
#: by (a tool, an agent, an error code). The sanitizer keeps them verbatim unless it can
#: name something sensitive in them (see ``Sanitizer.name``).
NAME_FIELDS = frozenset(
    name for name, pattern in _CHECKS.items() if pattern is not None and name != "session_id"
)


def is_name(value: str) -> bool:
    """Is ``value`` shaped like a name field (the widest of the name patterns)?"""
    return _NAME.fullmatch(value) is not None


def _plan(event_type: str) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    allowed = set(COMMON_FIELDS) | set(REQUIRED[event_type]) | set(OPTIONAL[event_type])
    if event_type == "feedback":
        allowed |= {"thumbs_up", "thumbs_down"}
    required = tuple(n for n in REQUIRED[event_type] if n != "rating")
    fields = tuple(
        n
        for n in (*COMMON_FIELDS[2:], *REQUIRED[event_type], *OPTIONAL[event_type])
        if n != "rating"
    )
    return frozenset(allowed), required, fields


#: Per event type: allowed input keys, required fields, fields to copy (computed once).
_PLANS = {event_type: _plan(event_type) for event_type in EVENT_TYPES}
_ALIAS_KEYS = frozenset(ALIASES)


def normalise_event(record: object) -> Normalised:
    """Validates one input record and returns the event to sanitize and store.

    Raises:
        EventError: the record is not an object, has an unknown type, lacks a
            required field or has a field of the wrong shape.
    """
    if not isinstance(record, Mapping):
        raise EventError("expected a JSON object")
    raw: Mapping[str, Any] = record
    if not _ALIAS_KEYS.isdisjoint(record) or not all(isinstance(k, str) for k in record):
        raw = {ALIASES.get(str(k), str(k)): v for k, v in record.items()}
    event_type = raw.get("event_type")
    plan = _PLANS.get(event_type) if isinstance(event_type, str) else None
    if plan is None:
        raise EventError(f"event_type: expected one of {', '.join(EVENT_TYPES)}")
    allowed, required, fields = plan
    if "timestamp" not in raw:
        raise EventError("timestamp: missing")
    for name in required:
        if raw.get(name) is None:
            raise EventError(f"{event_type}: missing {name}")
    event: dict[str, Any] = {
        "timestamp": canonical_timestamp(raw["timestamp"]),
        "event_type": event_type,
    }
    for name in fields:
        value = raw.get(name)
        if value is None:
            continue
        if name == "success":
            event[name] = _bool(name, value)
        elif name == "latency_ms":
            event[name] = _number(name, value)
        elif name == "retry_count":
            event[name] = int(_number(name, value))
        elif name == "severity":
            if value not in SEVERITIES:
                raise EventError(f"severity: expected one of {', '.join(SEVERITIES)}")
            event[name] = value
        else:
            event[name] = _text(name, value, _CHECKS[name])
    if event_type == "feedback":
        event["rating"] = _rating(raw)
    dropped = () if allowed.issuperset(raw) else tuple(sorted(k for k in raw if k not in allowed))
    return Normalised(event, dropped)
