"""OpenTelemetry spans that cost nothing until someone can receive them.

``from opentelemetry import trace`` at module level costs ~15–25 ms of start-up (logging,
typing_extensions, entry points) on every ``ouro tool run``, although a span is a no-op
until an interface installs a tracer provider (``improve.intake.spans.install``). A
provider can only be installed by a process that has imported ``opentelemetry.trace``
(or asked for one through ``OTEL_PYTHON_TRACER_PROVIDER``), so until then ``span`` hands
out a do-nothing span without importing OpenTelemetry at all; afterwards it is the real
``start_as_current_span`` (exceptions recorded, parent context kept).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"

Attributes = Mapping[str, str | bool | int | float]


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass


_NO_SPAN = _NoSpan()
_TRACERS: dict[str, Any] = {}


def live() -> bool:
    """Whether spans may be received: OpenTelemetry is loaded or a provider is named."""
    return "opentelemetry.trace" in sys.modules or bool(os.environ.get(_PROVIDER_ENV))


@contextmanager
def span(instrumentation: str, name: str, attributes: Attributes | None = None
         ) -> Iterator[Span]:
    """``tracer(instrumentation).start_as_current_span(name)``, or a no-op span."""
    if not live():
        yield _NO_SPAN
        return
    tracer = _TRACERS.get(instrumentation)
    if tracer is None:
        from opentelemetry import trace

        # one per name: `get_tracer` builds a new tracer (and its scope) on every call;
        # before a provider is set this is the API's proxy, which follows it once set
        tracer = _TRACERS.setdefault(instrumentation, trace.get_tracer(instrumentation))
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def mark_error(current: Span, description: str) -> None:
    """Set an ERROR status on a span from ``span`` (nothing for the no-op span)."""
    if isinstance(current, _NoSpan):
        return
    from opentelemetry import trace

    current.set_status(trace.Status(trace.StatusCode.ERROR, description))  # type: ignore[attr-defined]
