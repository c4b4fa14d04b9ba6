"""The runtime's own activity as OpenTelemetry spans, into the telemetry store.

Capabilities emit spans through the OpenTelemetry *API* only (``ouro.tool.run`` in the
skill store, ``ouro.solve`` in tool control, ``ouro.evolve`` in the evolution engine; a
no-op until a provider is installed). :func:`install` sets the SDK's provider once per
process with :class:`StoreSpanExporter`, which turns each finished span into a sanitized
``tool_call`` event of the workspace's store (trace and span ids kept), and, when an OTLP
endpoint is configured and the OTLP exporter package is installed, exports the same
spans there too. Kernel outcomes (submits, rejections) come from the ledger:
:func:`ledger_spans` replays them as spans with their ledger times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status, StatusCode

from ouroboros.capabilities.improve.intake.events import EventError
from ouroboros.capabilities.improve.intake.store import TelemetryStore

#: Span names the exporter records; any other span is ignored (it is not ours to store).
KINDS = {"ouro.tool.run": "tool", "ouro.solve": "solve", "ouro.evolve": "evolve",
         "ouro.patch": "patch"}


def _at(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None


class StoreSpanExporter(SpanExporter):
    """Finished spans -> ``tool_call`` events of a telemetry store (sanitized on the way).

    The tool an event names is ``tool.<id>``-free: the tool's own id for a tool run,
    ``solve`` for a solve, ``evolve.<what>`` for an evolution run, ``patch.<type>`` for a
    kernel outcome, so the stability rules see the runtime's parts like any agent's tools.
    """

    def __init__(self, store: TelemetryStore | None = None) -> None:
        self.store = store
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        store = self.store
        if store is None:
            return SpanExportResult.SUCCESS
        for span in spans:
            event = self.event_of(span)
            if event is None:
                continue
            try:
                store.record(event)
                self.exported += 1
            except (EventError, OSError):
                continue  # one unstorable span never stops the others
        return SpanExportResult.SUCCESS

    @staticmethod
    def event_of(span: ReadableSpan) -> dict[str, Any] | None:
        kind = KINDS.get(span.name)
        if kind is None:
            return None
        attrs = dict(span.attributes or {})
        if attrs.get("ouro.reference"):
            return None  # a tool consulted while judging another is not a use of it
        ok = span.status.status_code != StatusCode.ERROR
        if kind == "tool":
            tool = str(attrs.get("ouro.tool", "unknown"))
        elif kind == "patch":
            tool = f"patch.{attrs.get('ouro.patch.type', 'unknown')}"
            ok = attrs.get("ouro.patch.status") != "rejected"
        elif kind == "evolve":
            tool = f"evolve.{attrs.get('ouro.evolve.what', 'run')}"
        else:
            tool = "solve"
        start, end = span.start_time, span.end_time
        latency = (end - start) / 1e6 if start and end and end >= start else None
        ctx = span.get_span_context()
        code = attrs.get("ouro.error_code") or (None if ok else "ERROR")
        if kind == "patch" and not ok:
            code = f"REJECTED_{str(attrs.get('ouro.patch.stage') or 'unknown').upper()}"
        when = _at(start) or datetime.now(UTC)
        return {
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "event_type": "tool_call",
            "agent": str(attrs.get("ouro.agent") or "runtime"),
            "tool": tool,
            "success": ok,
            "latency_ms": latency,
            "error_code": None if ok else str(code),
            "error_message": None if ok else str(attrs.get("ouro.error")
                                                 or span.status.description or "failed"),
            "trace_id": f"{ctx.trace_id:032x}" if ctx and ctx.trace_id else None,
            "span_id": f"{ctx.span_id:016x}" if ctx and ctx.span_id else None,
        }


_EXPORTER = StoreSpanExporter()
_PROVIDER: TracerProvider | None = None


def install(store: TelemetryStore, otlp_endpoint: str | None = None) -> TracerProvider:
    """Route this process's spans into ``store`` (the latest workspace opened wins), and
    to an OTLP collector when one is configured and its exporter package is installed."""
    global _PROVIDER
    _EXPORTER.store = store
    if _PROVIDER is None:
        _PROVIDER = TracerProvider()
        _PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(_PROVIDER)
    if otlp_endpoint and otlp_endpoint not in _OTLP:
        _OTLP[otlp_endpoint] = _add_otlp(_PROVIDER, otlp_endpoint)
    return _PROVIDER


_OTLP: dict[str, bool] = {}


def otlp_available() -> bool:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError:
        return False
    return True


def _add_otlp(provider: TracerProvider, endpoint: str) -> bool:
    """Export to an OTLP/HTTP collector too (False: its exporter package is not installed)."""
    if not otlp_available():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    return True


def record_outcome_span(tracer: trace.Tracer, *, at: datetime, status: str, patch_type: str,
                        author: str, stage: str | None, reason: str | None) -> None:
    """One kernel outcome (from the ledger) as an ``ouro.patch`` span at its ledger time."""
    ns = int(at.timestamp() * 1e9)
    span = tracer.start_span("ouro.patch", start_time=ns, attributes={
        "ouro.patch.status": status, "ouro.patch.type": patch_type, "ouro.agent": author,
        **({"ouro.patch.stage": stage} if stage else {}),
        **({"ouro.error": reason} if reason and status == "rejected" else {})})
    if status == "rejected":
        span.set_status(Status(StatusCode.ERROR, reason or "rejected"))
    span.end(end_time=ns)


def store_tracer(store: TelemetryStore) -> trace.Tracer:
    """A tracer whose spans go to ``store`` alone (for replaying the ledger)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    return provider.get_tracer("ouroboros.kernel")
