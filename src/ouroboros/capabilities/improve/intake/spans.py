"""The runtime's own activity as OpenTelemetry spans, into the telemetry store.

Capabilities emit spans through the OpenTelemetry *API* only (``ouro.tool.run`` in the
skill store, ``ouro.solve`` in tool control, ``ouro.evolve`` in the evolution engine; a
no-op until a provider is installed). :func:`install` sets the SDK's provider once per
process with :class:`StoreSpanExporter`, which turns each finished span into a sanitized
``tool_call`` event of the workspace's store (trace and span ids kept), and, when an OTLP
endpoint is configured and the OTLP exporter package is installed, exports the same
spans there too. Kernel outcomes (submits, rejections) come from the ledger:
:func:`ledger_spans` replays them as spans with their ledger times.

**Off the caller's path.** Spans are written by the SDK's batch processor, one append and
one fsync per batch, not per span: writing each tool run's event as it ended cost 0.5 ms
of a 0.8 ms warm tool call (docs/BENCHMARKS.md, "Tool runs"). Nothing recorded is out of
reach: every reader of a telemetry store in this process flushes the batch first
(`store.flush_before_reading`), switching workspaces flushes to the old one, and the
provider flushes at exit. A process killed outright loses at most its last
``FLUSH_MS`` of runtime spans (the ledger, metrics and received OTLP are not batched).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status, StatusCode

from ouroboros.capabilities.improve.intake.events import LOCAL_SOURCE
from ouroboros.capabilities.improve.intake.spool import event_from
from ouroboros.capabilities.improve.intake.store import TelemetryStore, flush_before_reading
from ouroboros.capabilities.tracing import CALLER

#: The longest a finished span waits before it is written.
FLUSH_MS = 200
#: Spans held at most (a burst past it drops the oldest, with the SDK's warning); at
#: thousands of tool runs a second a batch holds hundreds.
QUEUE = 1 << 16


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
        by_source: dict[str, list[dict[str, Any]]] = {}
        for span in spans:
            event = self.event_of(span)
            if event is not None:  # work done for a token is that token's, not the runtime's
                caller = (span.attributes or {}).get(CALLER)
                source = caller if isinstance(caller, str) and caller else LOCAL_SOURCE
                by_source.setdefault(source, []).append(event)
        try:  # one write and one fsync per source; an invalid event is skipped alone
            for source, events in by_source.items():
                self.exported += store.record_many(events, source=source)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    @staticmethod
    def event_of(span: ReadableSpan) -> dict[str, Any] | None:
        ctx = span.get_span_context()
        return event_from(
            span.name, dict(span.attributes or {}),
            ok=span.status.status_code != StatusCode.ERROR,
            description=span.status.description, start_ns=span.start_time,
            end_ns=span.end_time,
            trace_id=f"{ctx.trace_id:032x}" if ctx and ctx.trace_id else None,
            span_id=f"{ctx.span_id:016x}" if ctx and ctx.span_id else None)


_EXPORTER = StoreSpanExporter()
_PROVIDER: TracerProvider | None = None
_BATCH: BatchSpanProcessor | None = None


def install(store: TelemetryStore, otlp_endpoint: str | None = None) -> TracerProvider:
    """Route this process's spans into ``store`` (the latest workspace opened wins), and
    to an OTLP collector when one is configured and its exporter package is installed."""
    global _PROVIDER, _BATCH
    if _EXPORTER.store is not None and _EXPORTER.store.root != store.root:
        flush()  # spans of the workspace open until now go to its store
    _EXPORTER.store = store
    if _PROVIDER is None:
        _PROVIDER = TracerProvider()
        _BATCH = BatchSpanProcessor(_EXPORTER, max_queue_size=QUEUE,
                                    schedule_delay_millis=FLUSH_MS, max_export_batch_size=4096)
        _PROVIDER.add_span_processor(_BATCH)
        trace.set_tracer_provider(_PROVIDER)
        flush_before_reading(flush)
    if otlp_endpoint and otlp_endpoint not in _OTLP:
        _OTLP[otlp_endpoint] = _add_otlp(_PROVIDER, otlp_endpoint)
    return _PROVIDER


_OTLP: dict[str, bool] = {}


def exporting() -> bool:
    """Whether this process's spans also go to an OTLP collector."""
    return any(_OTLP.values())


def flush() -> None:
    """Write the spans this process holds back to the store (readers call it first; an
    OTLP collector's own batch is not waited for)."""
    if _BATCH is not None:
        _BATCH.force_flush()


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
                        author: str, stage: str | None, reason: str | None,
                        source: str = LOCAL_SOURCE) -> None:
    """One kernel outcome (from the ledger) as an ``ouro.patch`` span at its ledger time,
    stored with ``source`` (who verifiably signed it, `runtime.outcome_source`)."""
    ns = int(at.timestamp() * 1e9)
    span = tracer.start_span("ouro.patch", start_time=ns, attributes={
        CALLER: source,
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
