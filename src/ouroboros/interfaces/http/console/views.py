"""What the console's pages show, as plain data: ledger events, pending patches, charts.

Pure functions from what the kernel and capabilities return to what a template prints:
a one-line summary of an event, the diff a pending patch would make, the points of a
trend line. They decide nothing: the gates, the approvals and the runs are the
capability functions' (routes.py calls them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ouroboros.interfaces.http.console.markup import clip, pretty_json
from ouroboros.kernel.ops import apply_op
from ouroboros.kernel.state import patch_from_envelope
from ouroboros.kernel.textdiff import make_diff

TRUST_TARGET = "kernel/trust"
PROPOSAL_PREFIX = "improve/proposals/"

#: The colour family of each event kind in the timeline (css class ``tone-…``).
TONES = {"PatchApplied": "good", "PatchRejected": "bad", "PatchPending": "wait",
         "PatchApproved": "good", "AuthorPaused": "bad", "AuthorResumed": "info",
         "EffectFailed": "bad", "Genesis": "info", "Checkpoint": "info"}


def short(patch_hash: str) -> str:
    """The 12 hex digits people type (``ouro approve 3f9a…``)."""
    return patch_hash.removeprefix("sha256:")[:12]


def when(iso: str) -> str:
    """``2026-12-06T10:16:41.500116Z`` → ``2026-12-06 10:16:41``."""
    return iso[:19].replace("T", " ")


def key_names(values: Mapping[str, Any]) -> dict[str, str]:
    """Key id → the name the trust policy gives it."""
    policy = values.get(TRUST_TARGET)
    keys = policy.get("keys") if isinstance(policy, Mapping) else None
    if not isinstance(keys, Mapping):
        return {}
    return {str(kid): str(entry.get("name", "?")) for kid, entry in keys.items()
            if isinstance(entry, Mapping)}


def _patch_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    envelope = payload.get("envelope")
    if not isinstance(envelope, Mapping):
        return {}
    try:
        return patch_from_envelope(dict(envelope))
    except (ValueError, KeyError, TypeError):
        return {}


@dataclass(frozen=True)
class EventRow:
    """One line of the timeline."""

    seq: int
    kind: str
    time: str
    tone: str
    signer: str
    patch_hash: str | None
    type: str | None
    target: str | None
    author: str | None
    text: str  # reasoning, a rejection's reason, or what else the event says

    @property
    def short_hash(self) -> str:
        return short(self.patch_hash) if self.patch_hash else ""


def event_row(event: Any, names: Mapping[str, str]) -> EventRow:
    p = event.payload if isinstance(event.payload, dict) else {}
    patch = _patch_of(p)
    patch_hash = p.get("patch_hash") if isinstance(p.get("patch_hash"), str) else None
    if event.kind == "PatchRejected":
        text = f"{p.get('stage', '?')}: {p.get('reason', '')}"
    elif event.kind == "PatchPending":
        text = str(patch.get("reasoning", ""))
    elif event.kind == "PatchApproved":
        text = f"approved by {names.get(str(p.get('approver')), short(str(p.get('approver', ''))))}"
    elif patch:
        text = str(patch.get("reasoning", ""))
    else:
        text = ", ".join(f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in sorted(p.items())
                         if k not in ("target", "envelope") and _scalar(v))
    target = p.get("target") or patch.get("target")
    return EventRow(event.seq, event.kind, when(event.time), TONES.get(event.kind, "info"),
                    names.get(event.key_id, short(event.key_id)), patch_hash,
                    p.get("type") or patch.get("type"),
                    target if isinstance(target, str) else None,
                    str(p.get("author") or patch.get("author") or "") or None,
                    clip(text, 240))


def _scalar(value: Any) -> str:
    """A payload value in a few words ("" for lists and objects: the event page has them)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str | int):
        return clip(str(value), 60)
    return ""


@dataclass(frozen=True)
class EventDetail:
    row: EventRow
    hash: str
    prev: str
    key_id: str
    patch: dict[str, Any]
    signatures: list[tuple[str, str]]  # (key name or id, key id)
    payload: str  # everything else, as indented JSON


def event_detail(event: Any, names: Mapping[str, str]) -> EventDetail:
    p = event.payload if isinstance(event.payload, dict) else {}
    envelope = p.get("envelope") if isinstance(p.get("envelope"), Mapping) else {}
    sigs = envelope.get("signatures", []) if isinstance(envelope, Mapping) else []
    signatures = [(names.get(str(s.get("keyid")), "unknown key"), str(s.get("keyid")))
                  for s in sigs if isinstance(s, Mapping)]
    rest = {k: v for k, v in p.items() if k != "envelope"}
    return EventDetail(event_row(event, names), event.hash, event.prev, event.key_id,
                       _patch_of(p), signatures, pretty_json(rest))


# -- pending patches ---------------------------------------------------------------------
@dataclass(frozen=True)
class PendingPatch:
    patch_hash: str
    seq: int
    needs: str
    author: str
    type: str
    target: str
    reasoning: str
    created: str
    tests: list[str]
    signers: list[str]
    base_current: bool  # made against the target's value now (else approval rejects it)
    diff: str  # what applying it would change, as a unified diff ("" if not computable)
    note: str  # why there is no diff, when there is none
    proposal: str | None  # the improvement proposal this patch belongs to

    @property
    def short_hash(self) -> str:
        return short(self.patch_hash)

    @property
    def hex(self) -> str:
        return self.patch_hash.removeprefix("sha256:")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def pending_patch(patch_hash: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                  target_hash: str, names: Mapping[str, str]) -> PendingPatch:
    """A pending patch and the change it would make to the target's current value."""
    raw = entry.get("envelope")
    envelope: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    patch = _patch_of({"envelope": envelope})
    target = str(patch.get("target", ""))
    old = values.get(target)
    diff, note = "", ""
    try:
        new = apply_op(patch["op"], old)
        if isinstance(old, str | None) and isinstance(new, str | None):
            diff = make_diff(old or "", new or "", target)
        else:
            diff = make_diff(_as_text(old), _as_text(new), target)
        if not diff:
            note = "applying it would not change the value"
    except Exception as e:  # a patch that no longer applies is shown, not fatal
        note = f"it does not apply to the current value: {e}"
    signers = [names.get(str(s.get("keyid")), short(str(s.get("keyid"))))
               for s in envelope.get("signatures", []) if isinstance(s, Mapping)]
    proposal = target.removeprefix(PROPOSAL_PREFIX) if target.startswith(PROPOSAL_PREFIX) \
        else None
    return PendingPatch(patch_hash, int(entry.get("seq", 0)), str(entry.get("needs", "")),
                        str(entry.get("author") or patch.get("author", "")),
                        str(patch.get("type", "")), target, str(patch.get("reasoning", "")),
                        when(str(patch.get("created", ""))),
                        [str(t) for t in patch.get("test_requirements", [])], signers,
                        patch.get("base") == target_hash, diff, note, proposal)


# -- charts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chart:
    """A line in a ``width`` × ``height`` SVG box (y grows downward): ``points`` for a
    polyline, ``dots`` for its markers, the plot area's edges, and the value ranges."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: str
    dots: list[tuple[float, float]]
    low: float
    high: float
    first_x: float
    last_x: float


def line_chart(series: Sequence[tuple[float, float]], width: int = 640, height: int = 150
               ) -> Chart | None:
    """(x, y) pairs as a line, both axes scaled to the plot area (None for no pairs)."""
    if not series:
        return None
    left, right, top, bottom = 56, width - 12, 10, height - 24
    xs = [x for x, _ in series]
    ys = [y for _, y in series]
    low, high = min(ys), max(ys)
    x0, x1 = min(xs), max(xs)
    y_span = high - low or 1.0
    x_span = x1 - x0 or 1.0
    dots = [(round(left + (x - x0) / x_span * (right - left), 1),
             round(top + (high - y) / y_span * (bottom - top), 1)) for x, y in series]
    if len(dots) == 1:  # one step: a level line across the plot
        dots = [(float(left), dots[0][1]), (float(right), dots[0][1])]
    return Chart(width, height, left, right, top, bottom,
                 " ".join(f"{x},{y}" for x, y in dots), dots, low, high, x0, x1)
