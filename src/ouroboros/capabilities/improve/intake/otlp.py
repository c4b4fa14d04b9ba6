"""OTLP/JSON spans to telemetry events.

The input is the OpenTelemetry protocol's JSON encoding of an
``ExportTraceServiceRequest`` (``resourceSpans`` → ``scopeSpans`` → ``spans``), as
written by the collector's file exporter (one request per line) or by SDK
exporters. A span becomes a ``tool_call`` when it carries ``gen_ai.tool.name`` or
``gen_ai.operation.name = execute_tool`` (the GenAI semantic conventions); any
event type can be sent explicitly as ``ouro.event_type`` with ``ouro.<field>``
attributes. Other spans (HTTP, database...) are not telemetry events and are
counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.improve.intake.events import EventError

_STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR")


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
    if event_type is None and (tool or attrs.get("gen_ai.operation.name") == "execute_tool"):
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
    if isinstance(span.get("traceId"), str) and span["traceId"]:
        record["trace_id"] = span["traceId"]
    if isinstance(span.get("spanId"), str) and span["spanId"]:
        record["span_id"] = span["spanId"]
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


def _exception(span: Mapping[str, Any]) -> dict[str, Any]:
    events = span.get("events")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, Mapping) and event.get("name") == "exception":
            return attributes(event.get("attributes"))
    return {}


def iter_spans(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """Every span of an ``ExportTraceServiceRequest``, numbered from 1 in document order."""
    index = 0
    resource_spans = document.get("resourceSpans")
    for rs in resource_spans if isinstance(resource_spans, list) else []:
        if not isinstance(rs, Mapping):
            continue
        resource_obj = rs.get("resource")
        resource = (
            attributes(resource_obj.get("attributes")) if isinstance(resource_obj, Mapping) else {}
        )
        scope_spans = rs.get("scopeSpans")
        for ss in scope_spans if isinstance(scope_spans, list) else []:
            spans = ss.get("spans") if isinstance(ss, Mapping) else None
            for span in spans if isinstance(spans, list) else []:
                index += 1
                if not isinstance(span, Mapping):
                    yield SpanRecord(index, error="span: expected a JSON object")
                    continue
                try:
                    record = span_to_record(span, resource)
                except EventError as e:
                    yield SpanRecord(index, error=str(e))
                    continue
                if record is None:
                    yield SpanRecord(index, skip="not a tool or ouro.event_type span")
                else:
                    yield SpanRecord(index, record=record)
