"""The telemetry store: sanitized events in daily JSONL files, append-only.

Layout: ``<home>/telemetry/events/YYYY-MM-DD.jsonl`` (the UTC day of each event's
timestamp), kept for 30 days. Every record goes through :func:`normalise_event`
and the :class:`Sanitizer` before its bytes exist, so there is no code path that
writes raw text.

Crash safety: a batch for one day is written with one ``write`` on an
``O_APPEND`` descriptor under an exclusive ``flock`` and then fsynced. A crash can
only leave a torn *last* line, which has no newline: readers skip it, and the next
writer first terminates it so that it can never glue onto a new record.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ouroboros.capabilities.improve.intake.events import (
    LOCAL_SOURCE,
    EventError,
    format_timestamp,
    normalise_event,
)
from ouroboros.capabilities.improve.intake.sanitizer import Redactions, Sanitizer
from ouroboros.storage.files import flocked

Clock = Callable[[], datetime]

#: The stored timestamp form (`format_timestamp`).
_STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
#: Writers that hold events back to batch them (the runtime's own spans,
#: ``intake.spans``): every reader in this process flushes them first, so a process
#: always reads what it recorded.
_PENDING: list[Callable[[], object]] = []


def flush_before_reading(flush: Callable[[], object]) -> None:
    """Register ``flush`` to run before any store of this process is read."""
    if flush not in _PENDING:
        _PENDING.append(flush)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReadStats:
    """Lines a reader skipped: torn by a crash, or not JSON (never raised)."""

    partial: int = 0
    corrupt: int = 0
    files: list[str] = field(default_factory=list)


class TelemetryStore:
    """Daily JSONL files under ``<home>/telemetry/events`` with rolling retention."""

    def __init__(
        self,
        home: Path | str,
        *,
        sanitizer: Sanitizer | None = None,
        clock: Clock = utc_now,
        retention_days: int = 30,
    ) -> None:
        self.root = Path(home) / "telemetry" / "events"
        self._sanitizer = sanitizer
        self.clock = clock
        self.retention_days = retention_days
        self.redactions = Redactions()
        self._pruned_on: date | None = None

    @property
    def sanitizer(self) -> Sanitizer:
        """Built on first use: readers (eval, monitoring) never load detect-secrets."""
        if self._sanitizer is None:
            self._sanitizer = Sanitizer()
        return self._sanitizer

    # -- writing -----------------------------------------------------------------

    def _drain_spool(self) -> None:
        """Store what lean processes spooled (`intake.spool`); a workspace this process
        may not write is read as it is."""
        from ouroboros.capabilities.improve.intake.spool import drain

        with contextlib.suppress(OSError):
            drain(self, self.root.parent.parent)

    def oldest_kept(self) -> date:
        """Events dated before this day are expired (not stored, and pruned)."""
        return (self.clock().astimezone(UTC) - timedelta(days=self.retention_days)).date()

    def append(self, events: Iterable[Mapping[str, Any]], source: str = LOCAL_SOURCE) -> int:
        """Writes already normalised *and sanitized* events, each stamped with ``source``
        (whatever ``source`` an event carried is replaced); returns how many."""
        by_day: dict[str, list[bytes]] = {}
        for event in events:
            day = event["timestamp"][:10]
            stamped = {k: v for k, v in event.items() if k != "source"}
            stamped["source"] = source
            by_day.setdefault(day, []).append(orjson.dumps(stamped) + b"\n")
        self.root.mkdir(parents=True, exist_ok=True)
        for day, lines in sorted(by_day.items()):
            self._append_lines(self.root / f"{day}.jsonl", b"".join(lines))
        self.prune()
        return sum(len(lines) for lines in by_day.values())

    def _append_lines(self, path: Path, payload: bytes) -> None:
        with flocked(path, flags=os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            size = os.fstat(fd).st_size
            if size and _last_byte(path, size) != b"\n":
                payload = b"\n" + payload  # seal a line torn by an earlier crash
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)

    def record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validates, sanitizes and stores one event from the runtime itself.

        Raises:
            EventError: the record is not a valid event (nothing is written).
        """
        event = self.sanitizer.event(normalise_event(raw).event, self.redactions)
        self.append([event])
        return event

    def record_many(self, raws: Iterable[Mapping[str, Any]],
                    source: str = LOCAL_SOURCE) -> int:
        """`record` for a batch, written with one append (one fsync per day file); an
        invalid record is skipped, never stops the others. Returns how many were stored.
        ``source``: the token the runtime did this work for (``local``: its own)."""
        events = []
        for raw in raws:
            try:
                events.append(self.sanitizer.event(normalise_event(raw).event, self.redactions))
            except EventError:
                continue
        return self.append(events, source) if events else 0

    def record_tool_run(
        self,
        *,
        tool: str,
        agent: str,
        success: bool,
        latency_ms: float | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        session_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A tool the runtime ran (a WASM skill, a FLUX program, a gateway action)."""
        return self.record(
            {
                "timestamp": format_timestamp(at or self.clock()),
                "event_type": "tool_call",
                "agent": agent,
                "tool": tool,
                "success": success,
                "latency_ms": latency_ms,
                "error_code": error_code if not success else None,
                "error_message": error_message if not success else None,
                "session_id": session_id,
            }
        )

    def record_patch_outcome(
        self,
        *,
        status: str,
        patch_type: str,
        author: str,
        stage: str | None = None,
        reason: str | None = None,
        latency_ms: float | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A kernel patch outcome, as a ``tool_call`` of the tool ``patch.<type>``.

        ``applied`` and ``pending`` count as success; ``rejected`` is a failure whose
        error code names the gate (``REJECTED_TEST``), so a capability whose patches
        keep failing a gate shows up in the reliability analysis like a flaky tool.
        """
        failed = status == "rejected"
        return self.record_tool_run(
            tool=f"patch.{patch_type}",
            agent=author,
            success=not failed,
            latency_ms=latency_ms,
            error_code=f"REJECTED_{(stage or 'unknown').upper()}" if failed else None,
            error_message=reason if failed else None,
            at=at,
        )

    def prune(self) -> list[Path]:
        """Deletes daily files older than the retention window (once a day per store)."""
        today = self.clock().astimezone(UTC).date()
        if self._pruned_on == today or not self.root.is_dir():
            return []
        self._pruned_on = today
        oldest = self.oldest_kept().isoformat()
        removed = []
        for path in sorted(self.root.glob("*.jsonl")):
            if len(path.stem) == 10 and path.stem < oldest:
                path.unlink()
                removed.append(path)
        return removed

    # -- reading -----------------------------------------------------------------

    def files(self, since: datetime | None = None, until: datetime | None = None) -> list[Path]:
        for flush in tuple(_PENDING):
            flush()
        self._drain_spool()
        if not self.root.is_dir():
            return []
        low = since.astimezone(UTC).date().isoformat() if since else ""
        high = until.astimezone(UTC).date().isoformat() if until else "9999"
        return [p for p in sorted(self.root.glob("*.jsonl")) if low <= p.stem <= high]

    def events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        stats: ReadStats | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Streams stored events (day files in order), skipping torn and corrupt lines."""
        stats = stats if stats is not None else ReadStats()
        low = format_timestamp(since) if since else ""
        high = format_timestamp(until) if until else "~"
        loads = orjson.loads
        for path in self.files(since, until):
            stats.files.append(path.name)
            with path.open("rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        stats.partial += 1
                        continue
                    try:
                        event = loads(line)
                    except orjson.JSONDecodeError:
                        if line.strip():
                            stats.corrupt += 1
                        continue
                    if not isinstance(event, dict) or not _well_typed(event):
                        stats.corrupt += 1
                        continue
                    ts = event.get("timestamp")
                    if not isinstance(ts, str):
                        stats.corrupt += 1
                    elif low <= ts < high:
                        yield event  # the reader of the event checks its form
                    elif not _STORED.fullmatch(ts):
                        stats.corrupt += 1  # not a time at all: counted, not silently out


#: Stored fields that are text (names, codes, messages): a reader groups by them, folds
#: them, sorts them; a number, list or object there (a hand-edited or damaged day file)
#: crashed the analysis.
_TEXT_FIELDS = ("event_type", "agent", "tool", "task_name", "session_id", "error_code",
                "error_message", "correction_type", "error_category", "reason_category",
                "rating", "severity", "source", "trace_id", "span_id")


def _well_typed(event: dict[str, Any]) -> bool:
    """Does every field the store writes have the type it writes (a reader skips and
    counts a line that does not, as one that is not JSON)?"""
    get = event.get
    for name in _TEXT_FIELDS:
        value = get(name)
        if value is not None and type(value) is not str:
            return False
    latency = get("latency_ms")
    if latency is not None and type(latency) is not float and type(latency) is not int:
        return False
    retries = get("retry_count")
    return retries is None or type(retries) is int


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)
