"""Spans of lean processes: spooled raw, stored by the next reader; and the one mapping
from a runtime span to a telemetry event.

``ouro tool run`` starts in 0.2 s by loading neither OpenTelemetry nor the sanitizer, so
its spans are written by ``capabilities.tracing`` as raw JSON lines to
``<home>/telemetry/spool.jsonl`` (names, codes, numbers and flags: no free text). The next
read of the workspace's telemetry store (`TelemetryStore.files`) calls :func:`drain`,
which records each line as the event a live span makes (:func:`event_from`, the same
function `spans.StoreSpanExporter` uses), sanitized, in one append.

Taking the spool: one drainer at a time (``spool.lock``); under the spool file's exclusive
lock it is renamed to ``spool.<ns>.draining``. A writer writes under a shared lock after
checking that its descriptor is still the file at ``spool.jsonl``, so each line lands
either in a file the drainer took before reading it, or in the next spool. A taken file is
deleted after its events are stored: a crash between the two records it again on the next
read (at least once, like `runtime.collect_ledger`), never loses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouroboros.capabilities.tracing import SPOOL_PATH
from ouroboros.storage.files import flocked, read_small

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

#: Span names that are telemetry events, and the kind of each; any other span is not ours
#: to store (an HTTP server span, a client library's).
KINDS = {"ouro.tool.run": "tool", "ouro.solve": "solve", "ouro.evolve": "evolve",
         "ouro.patch": "patch"}
LOCK = "spool.lock"
#: The largest spool line read (a longer one is not the tracer's: skipped).
MAX_LINE = 4096


def event_from(name: str, attrs: Mapping[str, Any], *, ok: bool, description: str | None,
               start_ns: int | None, end_ns: int | None, trace_id: str | None,
               span_id: str | None) -> dict[str, Any] | None:
    """The ``tool_call`` event a runtime span stands for (None: not one of ours).

    The tool an event names is the tool's own id for a tool run, ``solve`` for a solve,
    ``evolve.<what>`` for an evolution run, ``patch.<type>`` for a kernel outcome, so the
    stability rules see the runtime's parts like any agent's tools.
    """
    kind = KINDS.get(name)
    if kind is None:
        return None
    if attrs.get("ouro.reference"):
        return None  # a tool consulted while judging another is not a use of it
    if kind == "tool":
        tool = str(attrs.get("ouro.tool", "unknown"))
    elif kind == "patch":
        tool = f"patch.{attrs.get('ouro.patch.type', 'unknown')}"
        ok = attrs.get("ouro.patch.status") != "rejected"
    elif kind == "evolve":
        tool = f"evolve.{attrs.get('ouro.evolve.what', 'run')}"
    else:
        tool = "solve"
    latency = (end_ns - start_ns) / 1e6 if start_ns and end_ns and end_ns >= start_ns else None
    code = attrs.get("ouro.error_code") or (None if ok else "ERROR")
    if kind == "patch" and not ok:
        code = f"REJECTED_{str(attrs.get('ouro.patch.stage') or 'unknown').upper()}"
    when = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else datetime.now(UTC)
    return {
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "event_type": "tool_call",
        "agent": str(attrs.get("ouro.agent") or "runtime"),
        "tool": tool,
        "success": ok,
        "latency_ms": latency,
        "error_code": None if ok else str(code),
        "error_message": None if ok else str(attrs.get("ouro.error") or description
                                             or "failed"),
        "trace_id": trace_id,
        "span_id": span_id,
    }


def drain(store: TelemetryStore, home: Path) -> int:
    """Store the spooled spans of ``home`` (see the module docstring); how many events.

    Raises:
        OSError: the spool cannot be taken or the store written (a read-only workspace);
            what was taken stays on disk for the next reader.
    """
    spool = Path(home).joinpath(*SPOOL_PATH)
    folder = spool.parent
    if not spool.exists() and not any(folder.glob("spool.*.draining")):
        return 0
    with flocked(folder / LOCK, mode=0o644):  # one drainer
        # Writers hold LOCK_SH on the spool from their check to their write.
        with contextlib.suppress(FileNotFoundError), flocked(spool, flags=os.O_RDONLY):
            os.replace(spool, folder / f"spool.{time.time_ns()}.draining")
        stored = 0
        for taken in sorted(folder.glob("spool.*.draining")):
            events = [e for e in map(_event, (read_small(taken, None) or b"").split(b"\n"))
                      if e is not None]
            if events:
                stored += store.record_many(events)
            taken.unlink()
        return stored


def _event(line: bytes) -> dict[str, Any] | None:
    """One spool line as an event; None for a line that is not a whole span record."""
    if not line or len(line) > MAX_LINE:
        return None
    try:
        record = json.loads(line)
        attrs = record["attrs"]
        if not isinstance(attrs, dict):
            return None
        start, end = record["start"], record["end"]
        if not (isinstance(start, int) and isinstance(end, int)):
            return None
        return event_from(str(record["name"]), attrs, ok=record["ok"] is True,
                          description=None, start_ns=start, end_ns=end,
                          trace_id=_hex(record.get("trace"), 32),
                          span_id=_hex(record.get("span"), 16))
    except (ValueError, KeyError, TypeError):
        return None  # torn or foreign: the store never sees it


def _hex(value: Any, width: int) -> str | None:
    if isinstance(value, str) and len(value) == width and all(
            c in "0123456789abcdef" for c in value):
        return value
    return None
