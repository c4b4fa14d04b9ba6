"""OTLP/JSON spans and log records to telemetry events.

The input is the OpenTelemetry protocol's JSON encoding of an
``ExportTraceServiceRequest`` (``resourceSpans`` → ``scopeSpans`` → ``spans``), as
written by the collector's file exporter (one request per line) or by SDK
exporters, or of an ``ExportLogsServiceRequest`` (``resourceLogs`` → ``scopeLogs`` →
``logRecords``). A span becomes a ``tool_call`` when it is a tool execution in any of
the conventions agents are instrumented with:

- the GenAI semantic conventions: ``gen_ai.tool.name``, or ``gen_ai.operation.name =
  execute_tool``;
- OpenInference (Arize, LlamaIndex, …): ``openinference.span.kind = TOOL``, the tool in
  ``tool.name``;
- OpenLLMetry (Traceloop): ``traceloop.span.kind = tool``, the tool in
  ``traceloop.entity.name``.

Any event type can be sent explicitly as ``ouro.event_type`` with ``ouro.<field>``
attributes, on a span or a log record. Other spans and records (HTTP, database...) are
not telemetry events and are counted as skipped. Trace and span ids are read as the
OTLP/JSON hex or as proto3-JSON base64 (what a generic protobuf-to-JSON encoder writes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.improve.intake.events import EventError

_STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8


def normalise_id(value: object, size: int) -> str | None:
    """An OTLP trace (16 bytes) or span (8 bytes) id as lowercase hex, from hex (OTLP/JSON)
    or base64 (proto3 JSON); None when absent, all zero, or neither."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 2 * size and _HEX.match(value):
        raw = bytes.fromhex(value)
    else:
        try:
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            return None
    if len(raw) != size or not any(raw):
        return None
    return raw.hex()


@dataclass(frozen=True)
class SpanRecord:
    """One span's event (``record``) or the reason it is not one (``skip``/``error``)."""

    index: int
    record: dict[str, Any] | None = None
    skip: str | None = None
    error: str | None = None


def _value(value: object) -> Any:
    """Unwraps an OTLP ``AnyValue`` (``{"stringValue": ...}`` and friends)."""
    if not isinstance(value, Mapping):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])  # int64 is a JSON string in OTLP/JSON
        except (TypeError, ValueError):
            return None
    if "doubleValue" in value:
        return value["doubleValue"]
    return None


def attributes(items: object) -> dict[str, Any]:
    """OTLP ``KeyValue`` list to a plain dict; malformed entries are ignored."""
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            out[item["key"]] = _value(item.get("value"))
    return out


def _nanos(value: object, name: str) -> int:
    try:
        nanos = int(str(value))
    except (TypeError, ValueError) as e:
        raise EventError(f"span: {name} is not an integer") from e
    if nanos <= 0:
        raise EventError(f"span: {name} missing or zero")
    return nanos


def span_to_record(span: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event record for one span, or None when the span is not a telemetry event.

    Raises:
        EventError: the span claims to be an event but its times are unusable.
    """
    attrs = attributes(span.get("attributes"))
    event_type = attrs.get("ouro.event_type")
    tool = attrs.get("gen_ai.tool.name")
    if _is_tool(attrs):
        tool = tool or attrs.get("tool.name") or attrs.get("traceloop.entity.name")
        if event_type is None:
            event_type = "tool_call"
    if event_type is None:
        return None
    start = _nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
    record: dict[str, Any] = {
        key[len("ouro.") :]: value for key, value in attrs.items() if key.startswith("ouro.")
    }
    record["event_type"] = event_type
    record["timestamp"] = start
    agent = attrs.get("gen_ai.agent.name") or resource.get("service.name")
    if agent is not None:
        record.setdefault("agent", agent)
    session = attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
    if session is not None:
        record.setdefault("session_id", session)
    _ids(span, record)
    if event_type != "tool_call":
        return record
    if not tool:
        name = span.get("name")
        tool = (
            name.split(" ", 1)[1]
            if isinstance(name, str) and name.startswith("execute_tool ")
            else name
        )
    record.setdefault("tool", tool)
    if span.get("endTimeUnixNano") not in (None, "", 0, "0"):
        end = _nanos(span.get("endTimeUnixNano"), "endTimeUnixNano")
        if end < start:
            raise EventError("span: endTimeUnixNano before startTimeUnixNano")
        record.setdefault("latency_ms", (end - start) / 1e6)
    raw_status = span.get("status")
    status: Mapping[str, Any] = raw_status if isinstance(raw_status, Mapping) else {}
    failed = status.get("code") in _STATUS_ERROR or "error.type" in attrs
    record.setdefault("success", not failed)
    if failed:
        exception = _exception(span)
        record.setdefault(
            "error_code", attrs.get("error.type") or exception.get("exception.type") or "ERROR"
        )
        message = status.get("message") or exception.get("exception.message")
        if message:
            record.setdefault("error_message", message)
    return record


def _is_tool(attrs: Mapping[str, Any]) -> bool:
    return bool(attrs.get("gen_ai.tool.name")
                or attrs.get("gen_ai.operation.name") == "execute_tool"
                or str(attrs.get("openinference.span.kind", "")).upper() == "TOOL"
                or str(attrs.get("traceloop.span.kind", "")).lower() == "tool")


def _ids(item: Mapping[str, Any], record: dict[str, Any]) -> None:
    trace = normalise_id(item.get("traceId"), TRACE_ID_BYTES)
    span = normalise_id(item.get("spanId"), SPAN_ID_BYTES)
    if trace is not None:
        record["trace_id"] = trace
    if span is not None:
        record["span_id"] = span


def log_to_record(log: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event record of one log record carrying ``ouro.event_type``, or None.

    Raises:
        EventError: it claims to be an event but has no usable time.
    """
    attrs = attributes(log.get("attributes"))
    event_type = attrs.get("ouro.event_type")
    if event_type is None:
        return None
    record: dict[str, Any] = {
        key[len("ouro.") :]: value for key, value in attrs.items() if key.startswith("ouro.")
    }
    record["event_type"] = event_type
    when = log.get("timeUnixNano")
    if when in (None, "", 0, "0"):
        when = log.get("observedTimeUnixNano")
    record["timestamp"] = _nanos(when, "timeUnixNano")
    agent = attrs.get("gen_ai.agent.name") or resource.get("service.name")
    if agent is not None:
        record.setdefault("agent", agent)
    session = attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
    if session is not None:
        record.setdefault("session_id", session)
    _ids(log, record)
    return record


def _walk(document: Mapping[str, Any], outer: str, inner: str, items: str, what: str,
          convert: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any] | None],
          skip: str) -> Iterator[SpanRecord]:
    """The items of an OTLP export request (resource -> scope -> items), numbered from 1
    in document order, each converted with its resource's attributes; the two request
    kinds (traces, logs) differ only in their field names."""
    index = 0
    resources = document.get(outer)
    for r in resources if isinstance(resources, list) else []:
        if not isinstance(r, Mapping):
            continue
        resource_obj = r.get("resource")
        resource = (
            attributes(resource_obj.get("attributes")) if isinstance(resource_obj, Mapping) else {}
        )
        scopes = r.get(inner)
        for sc in scopes if isinstance(scopes, list) else []:
            found = sc.get(items) if isinstance(sc, Mapping) else None
            for item in found if isinstance(found, list) else []:
                index += 1
                if not isinstance(item, Mapping):
                    yield SpanRecord(index, error=f"{what}: expected a JSON object")
                    continue
                try:
                    record = convert(item, resource)
                except EventError as e:
                    yield SpanRecord(index, error=str(e).replace("span:", f"{what}:"))
                    continue
                if record is None:
                    yield SpanRecord(index, skip=skip)
                else:
                    yield SpanRecord(index, record=record)


def iter_log_records(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """Every log record of an ``ExportLogsServiceRequest``, numbered from 1."""
    return _walk(document, "resourceLogs", "scopeLogs", "logRecords", "log record",
                 log_to_record, "not an ouro.event_type log record")


def _exception(span: Mapping[str, Any]) -> dict[str, Any]:
    events = span.get("events")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, Mapping) and event.get("name") == "exception":
            return attributes(event.get("attributes"))
    return {}


def iter_spans(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """Every span of an ``ExportTraceServiceRequest``, numbered from 1 in document order."""
    return _walk(document, "resourceSpans", "scopeSpans", "spans", "span", span_to_record,
                 "not a tool or ouro.event_type span")
