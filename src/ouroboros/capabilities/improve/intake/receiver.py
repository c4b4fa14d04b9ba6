"""OTLP export requests (protobuf or JSON) into the telemetry store, each span once.

What an OTLP/HTTP receiver needs beyond the file collector: decoding protobuf bodies
(with ``opentelemetry-proto``, into the same OTLP/JSON shape `otlp.py` reads), and
idempotence — exporters retry whole batches, so a span already stored (same trace and
span id) is counted as a duplicate, not stored twice. Log records have no id; a record is
the same record when its bytes are (a digest of its time, ids, attributes and body).

Every record goes through `normalise_event` and the store's sanitizer before it is
appended, exactly as in `collectors.ingest`: there is no path that stores raw text.

Dedup keys live in ``<home>/telemetry/otlp-seen.db`` (SQLite). Check, append and record
run inside one ``BEGIN IMMEDIATE`` transaction, so two receivers (threads or processes)
given the same span store it once; keys are written only after the events are, so a
crash in between can repeat a span, never lose one.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from ouroboros.capabilities.improve.intake.events import (
    UNKNOWN_SOURCE,
    EventError,
    format_timestamp,
    normalise_event,
)
from ouroboros.capabilities.improve.intake.otlp import SpanRecord, iter_log_records, iter_spans
from ouroboros.capabilities.improve.intake.sanitizer import Redactions
from ouroboros.capabilities.improve.intake.store import TelemetryStore

Signal = Literal["traces", "logs"]
MAX_ERRORS = 20
#: How far ahead of this clock a record may be dated: an exporter sends a span after it
#: ended, so only clock skew. (A day, as file ingest allows, let a token holder plant calls
#: dated into monitoring windows not yet open, still counted after the token was revoked.)
MAX_AHEAD = timedelta(minutes=5)


class OTLPDecodeError(ValueError):
    """The body is not an export request of the declared encoding."""


def decode(body: bytes, signal: Signal, encoding: Literal["protobuf", "json"]) -> Any:
    """An export request as the OTLP/JSON-shaped dict `otlp.py` reads.

    Raises:
        OTLPDecodeError: not valid protobuf / JSON for the signal.
    """
    if encoding == "json":
        try:
            return orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as e:
            raise OTLPDecodeError(f"the body is not JSON: {e}") from None
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message: ExportTraceServiceRequest | ExportLogsServiceRequest = (
        ExportTraceServiceRequest() if signal == "traces" else ExportLogsServiceRequest())
    try:
        message.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise OTLPDecodeError(f"the body is not an OTLP {signal} protobuf message: {e}") from None
    # proto3 JSON: camelCase names, int64 as strings, ids as base64 (otlp.py reads both)
    return MessageToDict(message)


def response(signal: Signal, encoding: Literal["protobuf", "json"], rejected: int,
             message: str) -> bytes:
    """The ``Export*ServiceResponse``: empty on full success, else ``partial_success``."""
    if encoding == "json":
        if not rejected:
            return b"{}"
        name = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
        return orjson.dumps({"partialSuccess": {name: str(rejected), "errorMessage": message}})
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        trace_answer = ExportTraceServiceResponse()
        if rejected:
            trace_answer.partial_success.rejected_spans = rejected
            trace_answer.partial_success.error_message = message
        return bytes(trace_answer.SerializeToString())
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    logs_answer = ExportLogsServiceResponse()
    if rejected:
        logs_answer.partial_success.rejected_log_records = rejected
        logs_answer.partial_success.error_message = message
    return bytes(logs_answer.SerializeToString())


@dataclass
class ReceiveReport:
    """One export request: ``received = stored + duplicates + rejected + expired +
    skipped``."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    expired: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)

    def reject(self, index: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"#{index}: {reason}")

    def message(self) -> str:
        return "; ".join(self.errors)[:1000]

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "expired": self.expired, "skipped": self.skipped, "errors": self.errors,
                "redactions": dict(sorted(self.redactions.items()))}


class SeenKeys:
    """The dedup keys of stored spans and log records, by event day (pruned with the store)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, day TEXT NOT NULL)")
        self._lock = threading.Lock()
        self._pruned: str | None = None

    def close(self) -> None:
        self._db.close()


def _key(signal: Signal, raw: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """A span's trace and span ids; a span without usable ids (absent, all zero, junk) and a
    log record are the same record when their bytes are: without that, one id-less failing
    span re-posted N times was N failures, enough alone to flag a healthy tool or spike a
    monitoring window into an automatic revert."""
    if signal == "traces":
        trace, span = record.get("trace_id"), record.get("span_id")
        if trace and span:
            return f"span:{trace}:{span}"
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{'span-digest' if signal == 'traces' else 'log'}:{digest}"


def _records(document: Any, signal: Signal) -> Iterator[tuple[SpanRecord, Mapping[str, Any]]]:
    """Each span / log record with its raw form (for the log-record digest)."""
    if not isinstance(document, Mapping):
        return
    if signal == "traces":
        raws = [span for rs in _list(document.get("resourceSpans"))
                for ss in _list(_get(rs, "scopeSpans")) for span in _list(_get(ss, "spans"))]
        items = iter_spans(document)
    else:
        raws = [log for rl in _list(document.get("resourceLogs"))
                for sl in _list(_get(rl, "scopeLogs")) for log in _list(_get(sl, "logRecords"))]
        items = iter_log_records(document)
    for item, raw in zip(items, raws, strict=False):
        yield item, raw if isinstance(raw, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, Mapping) else None


def receive(document: Any, signal: Signal, store: TelemetryStore, seen: SeenKeys,
            source: str = UNKNOWN_SOURCE) -> ReceiveReport:
    """Normalise, sanitize and store the events of one export request, each once, stamped
    with ``source`` (the submitting token's name): no span or resource attribute can set or
    change it, so the analysis and the monitor can count each submitter separately."""
    report = ReceiveReport()
    redactions = Redactions(report.redactions)
    oldest = store.oldest_kept().isoformat()
    newest = format_timestamp(store.clock() + MAX_AHEAD)
    candidates: list[tuple[str | None, dict[str, Any]]] = []
    for item, raw in _records(document, signal):
        report.received += 1
        if item.error is not None:
            report.reject(item.index, item.error)
            continue
        if item.record is None:
            report.skipped += 1
            continue
        try:
            event = normalise_event(item.record).event
        except EventError as e:
            report.reject(item.index, str(e))
            continue
        if event["timestamp"][:10] < oldest:
            report.expired += 1
            continue
        if event["timestamp"] > newest:
            report.reject(item.index, "timestamp: more than 5 minutes in the future")
            continue
        candidates.append((_key(signal, raw, event), event))
    if not candidates:
        return report
    sanitize = store.sanitizer.event
    with seen._lock:
        db = seen._db
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh: list[tuple[str | None, dict[str, Any]]] = []
            batch: set[str] = set()
            for key, event in candidates:
                if key is not None and (key in batch or db.execute(
                        "SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone()):
                    report.duplicates += 1
                    continue
                if key is not None:
                    batch.add(key)
                fresh.append((key, event))
            report.stored = store.append([sanitize(e, redactions) for _, e in fresh], source)
            db.executemany("INSERT OR IGNORE INTO seen (key, day) VALUES (?, ?)",
                           [(k, e["timestamp"][:10]) for k, e in fresh if k is not None])
            if seen._pruned != oldest:
                db.execute("DELETE FROM seen WHERE day < ?", (oldest,))
                seen._pruned = oldest
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return report


def seen_keys(home: Path | str) -> SeenKeys:
    return SeenKeys(Path(home) / "telemetry" / "otlp-seen.db")
