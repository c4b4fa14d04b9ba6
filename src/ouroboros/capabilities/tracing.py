"""OpenTelemetry spans that cost nothing until someone can receive them.

``from opentelemetry import trace`` at module level costs ~15–25 ms of start-up (logging,
typing_extensions, entry points) on every ``ouro tool run``, although a span is a no-op
until an interface installs a tracer provider (``improve.intake.spans.install``). A
provider can only be installed by a process that has imported ``opentelemetry.trace``
(or asked for one through ``OTEL_PYTHON_TRACER_PROVIDER``), so until then ``span`` hands
out a do-nothing span without importing OpenTelemetry at all; afterwards it is the real
``start_as_current_span`` (exceptions recorded, parent context kept).

**The spool.** A lean process that will never load OpenTelemetry (``ouro tool run``) calls
:func:`spool_to` with its workspace: its spans are then written as one raw JSON line each
to ``<home>/telemetry/spool.jsonl`` (name, times, ok, random ids, and only the attributes
in ``SPOOL_KEYS`` that are names, codes, numbers or flags: no free text, so nothing in the
spool needs sanitizing), about 20 µs a span. The telemetry store takes the spool on its
next read (``improve.intake.spool``). The lines are written without fsync: a process that
dies keeps them; a machine that loses power may lose its last seconds of them.

**On whose behalf.** A server runs tools for the holders of its tokens. An interface names
the caller (:func:`set_caller`, a context variable, so each request and the threads it
hands work to keep their own) and every span started under it carries ``ouro.caller``;
the telemetry store stamps such spans with that name as their ``source`` instead of
``local``, so a token cannot pass off failures it provoked (a tool run with its fuel
lowered) as the runtime's own trusted observations.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from ouroboros.storage.files import LockTimeout, flocked

_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"

Attributes = Mapping[str, str | bool | int | float]


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass


_NO_SPAN = _NoSpan()
_TRACERS: dict[str, Any] = {}
#: The span attribute naming the token a span's work was done for (see the module doc).
CALLER = "ouro.caller"
_CALLER: ContextVar[str | None] = ContextVar("ouro_caller", default=None)


def set_caller(name: str | None) -> None:
    """Spans started from now on in this context (a request, and the threads it hands
    work to) are on behalf of the token ``name``; ``None`` or ``"local"``: the runtime's own."""
    _CALLER.set(None if name == "local" else name)

#: The spool's file under the workspace (read by ``improve.intake.spool``).
SPOOL_PATH = ("telemetry", "spool.jsonl")
#: The attributes a spooled span keeps (what the telemetry event is made of, but for the
#: error's free text, which only a sanitizer may store).
SPOOL_KEYS = frozenset({"ouro.tool", "ouro.fingerprint", "ouro.agent", "ouro.error_code",
                        "ouro.reference", "ouro.solve.outcome", "ouro.evolve.what",
                        "ouro.evolve.generations", "ouro.evolve.best_fitness"})
_SPOOL: Path | None = None


def spool_to(home: Path | str | None) -> None:
    """Write this process's spans to ``home``'s spool while no provider can take them
    (None: stop)."""
    global _SPOOL
    _SPOOL = None if home is None else Path(home).joinpath(*SPOOL_PATH)


class _SpooledSpan:
    __slots__ = ("attributes", "ok")

    def __init__(self, attributes: Attributes | None) -> None:
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.ok = True

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


def live() -> bool:
    """Whether spans may be received: OpenTelemetry is loaded or a provider is named."""
    return "opentelemetry.trace" in sys.modules or bool(os.environ.get(_PROVIDER_ENV))


@contextmanager
def span(instrumentation: str, name: str, attributes: Attributes | None = None
         ) -> Iterator[Span]:
    """``tracer(instrumentation).start_as_current_span(name)``, or a spooled or no-op
    span."""
    caller = _CALLER.get()
    if caller is not None:
        attributes = {**(attributes or {}), CALLER: caller}
    if not live():
        if _SPOOL is None:
            yield _NO_SPAN
            return
        spooled, start = _SpooledSpan(attributes), time.time_ns()
        try:
            yield spooled
        except BaseException:
            spooled.ok = False
            raise
        finally:
            _spool(_SPOOL, name, spooled, start, time.time_ns())
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
    if isinstance(current, _SpooledSpan):
        current.ok = False  # the description is free text: not spooled
        return
    from opentelemetry import trace

    current.set_status(trace.Status(trace.StatusCode.ERROR, description))  # type: ignore[attr-defined]


def _spool(path: Path, name: str, current: _SpooledSpan, start: int, end: int) -> None:
    """Append the span's line; never raises (a tool run does not fail on its telemetry)."""
    kept = {k: v for k, v in current.attributes.items() if k in SPOOL_KEYS and (
        isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 256))}
    line = json.dumps({"name": name, "start": start, "end": end, "ok": current.ok,
                       "trace": os.urandom(16).hex(), "span": os.urandom(8).hex(),
                       "attrs": kept}, separators=(",", ":")).encode() + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            # Shared: a drainer renames the file under its exclusive lock.
            with flocked(path, shared=True, flags=os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
                try:
                    now = os.stat(path)
                except FileNotFoundError:
                    continue
                held = os.fstat(fd)
                if (held.st_ino, held.st_dev) != (now.st_ino, now.st_dev):
                    continue  # a drainer took this file meanwhile: write to the new one
                os.write(fd, line)  # one write of one short line: whole, under O_APPEND
                return
    except (OSError, LockTimeout):  # a spool another process holds past the bound: dropped
        pass
