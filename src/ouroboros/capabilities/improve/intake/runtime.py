"""Telemetry from the runtime itself, and the findings over a workspace.

The kernel has no hooks to call us, and needs none: every patch outcome is
already a ledger event (``PatchApplied``, ``PatchRejected``, ``PatchPending``),
so :func:`collect_ledger` reads the ledger from a cursor and records each outcome
once. Tool runs are recorded by whoever runs the tool, through
:meth:`TelemetryStore.record_tool_run` on :func:`store_for` ``(rt)``.

An outcome is stored with the source of who verifiably signed it (`outcome_source`), never
``local``: a submit token's rejected patches would be trusted failures of ``patch.<type>``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouroboros.capabilities.improve.intake.events import UNKNOWN_SOURCE
from ouroboros.capabilities.improve.intake.spans import record_outcome_span, store_tracer
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.storage.files import read_text_file, replace_file

if TYPE_CHECKING:
    from ouroboros.kernel import Runtime, SubmitOutcome

CURSOR_NAME = "ledger.cursor"


def store_for(rt: Runtime) -> TelemetryStore:
    """The workspace's telemetry store, on the runtime's (injectable) clock."""
    return TelemetryStore(rt.home, clock=rt.clock.now)


def record_outcome(
    store: TelemetryStore,
    outcome: SubmitOutcome,
    *,
    patch_type: str,
    author: str,
    latency_ms: float | None = None,
) -> None:
    """Records one ``propose_and_submit`` outcome as it happens."""
    store.record_patch_outcome(
        status=outcome.status,
        patch_type=patch_type,
        author=author,
        stage=outcome.stage or None,
        reason=outcome.reason or None,
        latency_ms=latency_ms,
    )


def _cursor_path(store: TelemetryStore) -> Path:
    return store.root.parent / CURSOR_NAME


def collect_ledger(rt: Runtime, store: TelemetryStore | None = None) -> int:
    """Records every patch outcome appended to the ledger since the last call.

    Returns the number of events recorded. The cursor is written after the
    events, so a crash in between can only re-record, never skip.
    """
    store = store or store_for(rt)
    cursor = _cursor_path(store)
    try:  # a number; a link, FIFO or anything longer is not the runtime's: from the start
        since = int((read_text_file(cursor, 64) or "").strip() or 0)
    except (OSError, ValueError):
        since = 0
    types: dict[str, str] = {}
    runtime_key = rt.refresh().runtime_key.get("id", "")
    tracer = store_tracer(store)  # each outcome becomes an ``ouro.patch`` span in the store
    recorded = 0
    last = since
    for event in rt.log(since=since + 1):
        last = event.seq
        payload = event.payload
        when = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        patch_hash = payload.get("patch_hash", "")
        if event.kind == "PatchApplied":
            types[patch_hash] = payload.get("type", "unknown")
            status = "applied"
        elif event.kind == "PatchPending":
            types[patch_hash] = _pending_type(payload)
            status = "pending"
        elif event.kind == "PatchRejected":
            status = "rejected"
        else:
            continue
        record_outcome_span(tracer, at=when, status=status,
                            patch_type=types.get(patch_hash, "unknown"),
                            author=payload.get("author") or "unknown",
                            stage=payload.get("stage"), reason=payload.get("reason"),
                            source=outcome_source(event.kind, payload, runtime_key))
        recorded += 1
    if last != since:
        store.root.parent.mkdir(parents=True, exist_ok=True)
        replace_file(cursor, str(last))
    return recorded


#: The source of an outcome a key other than the runtime's signed: ``key:<id prefix>`` (a
#: token name cannot hold a colon, so no token can pass for a key or the reverse).
KEY_SOURCE = "key:"


def outcome_source(kind: str, payload: dict[str, Any], runtime_key: str) -> str:
    """Who verifiably signed a kernel outcome, as a telemetry source: ``key:<id>`` of its
    signing key (another key's before the runtime's), and ``unknown`` when the ledger event
    names no verified signer (a rejection charged to nobody: unsigned, forged, an unknown
    key, or a reason anyone can provoke; a rollback). Never ``local``, not even for the
    runtime key: it also signs what a token asks for (an MCP ``create_tool``'s skill patch)
    and the ledger does not say who asked; ``patch.*`` outcomes are trusted only where
    ``telemetry.trusted_sources`` names the key. The ``author`` a patch claims is not used:
    any key can claim any."""
    subjects = payload.get("charged" if kind == "PatchRejected" else "subjects")
    if not isinstance(subjects, list) or not subjects:
        return UNKNOWN_SOURCE
    keys = sorted({str(s).partition("/")[0] for s in subjects},
                  key=lambda k: (k == runtime_key, k))
    return KEY_SOURCE + keys[0][:16]


def _pending_type(payload: dict[str, Any]) -> str:
    from ouroboros.kernel.state import patch_from_envelope

    envelope = payload.get("envelope")
    try:
        if isinstance(envelope, dict):
            return str(patch_from_envelope(envelope).get("type", "unknown"))
    except (KeyError, ValueError, TypeError):  # undecodable: the kernel's concern, not ours
        pass
    return "unknown"

