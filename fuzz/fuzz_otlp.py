"""OTLP intake (JSON and protobuf bodies) and the telemetry event parser
(capabilities/improve/intake/receiver.py, otlp.py, events.py).

The first byte picks the signal (traces or logs), the encoding (JSON or protobuf), or a
bare event record for ``normalise_event``. Invariant: ``decode`` raises only
``OTLPDecodeError``; ``receive`` never raises and its report adds up (received = stored +
duplicates + rejected + expired + skipped); ``normalise_event`` raises only
``EventError`` and the sanitizer never raises on what it accepts.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _harness import fuzz, instrumented

with instrumented(__name__):
    from ouroboros.capabilities.improve.intake.events import EventError, normalise_event
    from ouroboros.capabilities.improve.intake.receiver import (
        OTLPDecodeError,
        SeenKeys,
        Signal,
        decode,
        receive,
    )
    from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 10**9
_STATE: tuple[TelemetryStore, SeenKeys] | None = None
SANITIZER = Sanitizer()


def _state() -> tuple[TelemetryStore, SeenKeys]:
    global _STATE
    if _STATE is None:
        home = Path(tempfile.mkdtemp(prefix="ouro-fuzz-otlp-"))
        _STATE = (TelemetryStore(home, clock=lambda: NOW), SeenKeys(home / "seen.db"))
    return _STATE


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _traces() -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "agent")]},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "execute_tool search", "startTimeUnixNano": str(START),
                "endTimeUnixNano": str(START + 5_000_000), "status": {"code": 2,
                                                                       "message": "boom"},
                "attributes": [_attr("gen_ai.tool.name", "search"),
                               _attr("session.id", "s1"),
                               {"key": "ouro.retry_count", "value": {"intValue": "2"}}]}]}]}]}


def _logs() -> dict[str, Any]:
    return {"resourceLogs": [{"resource": {"attributes": [_attr("service.name", "agent")]},
            "scopeLogs": [{"logRecords": [{
                "timeUnixNano": str(START), "body": {"stringValue": "x"},
                "attributes": [_attr("ouro.event_type", "error"),
                               _attr("ouro.error_code", "E1"),
                               _attr("ouro.error_message", "password=hunter2 at /home/a")]}]}]}]}


def seeds() -> list[bytes]:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    traces, logs = _traces(), _logs()
    event = {"event_type": "tool_call", "timestamp": "2026-01-01T00:00:00Z", "tool": "t",
             "success": False, "latency_ms": 12.5, "error_message": "token ghp_x"}
    return [b"\x00" + json.dumps(traces).encode(), b"\x01" + json.dumps(logs).encode(),
            b"\x02" + ParseDict(traces, ExportTraceServiceRequest()).SerializeToString(),
            b"\x03" + ParseDict(logs, ExportLogsServiceRequest()).SerializeToString(),
            b"\x04" + json.dumps(event).encode()]


def test_one(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 5, data[1:]
    if mode == 4:
        try:
            record = json.loads(body)
        except (ValueError, RecursionError):
            return
        try:
            event = normalise_event(record).event
        except EventError:
            return
        SANITIZER.event(event)
        return
    signal: Signal = "traces" if mode % 2 == 0 else "logs"
    try:
        document = decode(body, signal, "json" if mode < 2 else "protobuf")
    except OTLPDecodeError:
        return
    if not isinstance(document, dict):
        return  # the route answers 400 before `receive`
    store, seen = _state()
    report = receive(document, signal, store, seen, "fuzz")
    assert report.received == (report.stored + report.duplicates + report.rejected
                               + report.expired + report.skipped), report


if __name__ == "__main__":
    fuzz(test_one)
