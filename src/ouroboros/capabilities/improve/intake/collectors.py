"""``ingest``: JSONL telemetry and OTLP/JSON span files into the store.

Bad input is data, not an exception: a line that is not JSON, not an event, or
outside the retention window is counted with its line number and a reason that
never quotes the line (it may hold the very secret we exist to keep out), and the
ingest carries on. Only sanitized events are handed to the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ouroboros.capabilities.improve.intake.events import (
    EventError,
    format_timestamp,
    normalise_event,
)
from ouroboros.capabilities.improve.intake.otlp import iter_spans
from ouroboros.capabilities.improve.intake.sanitizer import Redactions
from ouroboros.capabilities.improve.intake.store import TelemetryStore

BATCH = 20_000
MAX_REPORTED = 1_000  # malformed lines listed individually; all are counted
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024  # one OTLP export request per line can be large


@dataclass(frozen=True)
class Malformed:
    file: str
    line: int
    reason: str
    span: int | None = None

    def where(self) -> str:
        return f"{self.file}:{self.line}" + (f" span {self.span}" if self.span else "")


@dataclass
class IngestReport:
    """What an ingest did: stored, malformed (with reasons), redactions, and the rest."""

    files: list[str] = field(default_factory=list)
    records: int = 0  # = stored + malformed_count + expired
    stored: int = 0
    malformed_count: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    expired: int = 0
    skipped_spans: int = 0
    dropped_fields: int = 0
    unreadable: list[str] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)

    def bad(self, file: str, line: int, reason: str, span: int | None = None) -> None:
        self.malformed_count += 1
        if len(self.malformed) < MAX_REPORTED:
            self.malformed.append(Malformed(file, line, reason, span))

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "stored": self.stored,
            "malformed": self.malformed_count,
            "malformed_lines": [
                {"file": m.file, "line": m.line, "span": m.span, "reason": m.reason}
                for m in self.malformed
            ],
            "expired": self.expired,
            "skipped_spans": self.skipped_spans,
            "dropped_fields": self.dropped_fields,
            "unreadable": self.unreadable,
            "redactions": dict(sorted(self.redactions.items())),
        }


def _lines(handle: BinaryIO, report: IngestReport, name: str) -> Iterator[tuple[int, bytes]]:
    """Numbered lines; a line over MAX_LINE_BYTES is reported and skipped, not loaded."""
    number = 0
    while line := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            report.records += 1
            report.bad(name, number, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        yield number, line


def _documents(path: Path, report: IngestReport) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) per line; a pretty-printed single document as line 1."""
    name = path.name
    with path.open("rb") as handle:
        first = True
        for number, line in _lines(handle, report, name):
            if not line.strip():
                first = False
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError:
                if first and line.lstrip().startswith((b"{", b"[")):
                    whole = _whole_document(path)
                    if whole is not None:
                        yield 1, whole
                        return
                report.records += 1
                report.bad(name, number, "not valid JSON")
            first = False


def _whole_document(path: Path) -> Any:
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        return None
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None


def _records(path: Path, report: IngestReport) -> Iterator[tuple[int, int | None, Any]]:
    """(line, span index or None, record) for every event candidate in a file."""
    for number, document in _documents(path, report):
        items = document if isinstance(document, list) else [document]
        for item in items:
            if isinstance(item, dict) and "resourceSpans" in item:
                for span in iter_spans(item):
                    if span.record is not None:
                        yield number, span.index, span.record
                    elif span.error is not None:
                        report.records += 1
                        report.bad(path.name, number, span.error, span.index)
                    else:
                        report.skipped_spans += 1
            else:
                yield number, None, item


def ingest(paths: Iterable[Path | str], store: TelemetryStore,
           progress: Callable[[int], None] | None = None) -> IngestReport:
    """Reads JSONL / OTLP JSON files, sanitizes every event and appends it to ``store``;
    ``progress`` (if given) is told the records read so far after every stored batch."""
    report = IngestReport()
    redactions = Redactions(report.redactions)
    sanitize = store.sanitizer.event
    oldest = store.oldest_kept().isoformat()
    newest = format_timestamp(store.clock() + timedelta(days=1))
    batch: list[dict[str, Any]] = []
    for raw_path in paths:
        path = Path(raw_path)
        report.files.append(path.name)
        try:
            for number, span, record in _records(path, report):
                report.records += 1
                try:
                    normalised = normalise_event(record)
                except EventError as e:
                    report.bad(path.name, number, str(e), span)
                    continue
                event = normalised.event
                if event["timestamp"][:10] < oldest:
                    report.expired += 1
                    continue
                if event["timestamp"] > newest:
                    report.bad(path.name, number, "timestamp: more than a day in the future", span)
                    continue
                report.dropped_fields += len(normalised.dropped)
                batch.append(sanitize(event, redactions))
                if len(batch) >= BATCH:
                    report.stored += store.append(batch)
                    batch = []
                    if progress is not None:
                        progress(report.records)
        except OSError as e:
            report.unreadable.append(f"{path.name}: {e.strerror or type(e).__name__}")
    if batch:
        report.stored += store.append(batch)
    return report
