"""State is a fold of the ledger: pure functions from events to values.

The state hash covers the targets' values only (the agent's behaviour), so a rollback that
restores the values restores the exact earlier state hash. Pending patches, breaker
counters and the applied-patch index are folded too, for the gates.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ouroboros.kernel.canonical import canonical_bytes, content_hash, hash_bytes
from ouroboros.kernel.merkle import MerkleAccumulator
from ouroboros.kernel.ops import apply_op, json_copy

GENESIS_PREV = "sha256:" + "0" * 64

KERNEL_KINDS = frozenset({
    "Genesis", "PatchApplied", "PatchRejected", "PatchPending", "PatchApproved",
    "AuthorPaused", "AuthorResumed", "Checkpoint", "EffectFailed",
})


@dataclass
class KernelState:
    seq: int = -1
    last_hash: str = GENESIS_PREV
    values: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    authors: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    runtime_key: dict[str, str] = field(default_factory=dict)
    merkle: MerkleAccumulator = field(default_factory=MerkleAccumulator)
    #: Content hash of each target's value, filled lazily and dropped whenever the fold
    #: changes the target: every patch's base check asks for one.
    hashes: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def target_hash(self, target: str) -> str:
        """``content_hash`` of the target's current value (``ABSENT`` if it has none)."""
        known = self.hashes.get(target)
        if known is None:
            known = content_hash(self.values.get(target))
            self.hashes[target] = known
        return known

    def state_hash(self) -> str:
        return content_hash({t: self.target_hash(t) for t in self.values})

    def copy(self) -> KernelState:
        return KernelState(self.seq, self.last_hash, json_copy(self.values),
                           json_copy(self.pending), json_copy(self.authors),
                           dict(self.applied), dict(self.runtime_key), self.merkle.copy(),
                           dict(self.hashes))

    def to_bytes(self) -> bytes:
        return canonical_bytes({
            "seq": self.seq, "last_hash": self.last_hash, "values": self.values,
            "pending": self.pending, "authors": self.authors, "applied": self.applied,
            "runtime_key": self.runtime_key, "merkle": self.merkle.to_dict(),
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> KernelState:
        d = json.loads(data)
        return cls(d["seq"], d["last_hash"], d["values"], d["pending"], d["authors"],
                   d["applied"], d["runtime_key"], MerkleAccumulator.from_dict(d["merkle"]))


def patch_from_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return patch


def _author(state: KernelState, name: str) -> dict[str, Any]:
    return state.authors.setdefault(name, {"rejections": 0, "paused_until": None})


_UNKNOWN: Any = object()


def fold_event(state: KernelState, seq: int, kind: str, payload: dict[str, Any],
               time: str, body: bytes, check_results: bool = False,
               track_merkle: bool = True, known_value: Any = _UNKNOWN) -> None:
    """Apply one decoded event to ``state`` in place. ``known_value``: the new value of a
    ``PatchApplied`` the caller has just computed (the appending writer), saving a re-apply."""
    if kind == "Genesis":
        state.values.update(json_copy(payload["targets"]))
        state.hashes.clear()
        state.runtime_key = dict(payload["runtime_key"])
    elif kind == "PatchApplied":
        target = payload["target"]
        if known_value is not _UNKNOWN:
            new = known_value
        else:
            patch = patch_from_envelope(payload["envelope"])
            if patch["target"] != target:
                raise ValueError(f"event {seq}: payload target differs from the patch's")
            new = apply_op(patch["op"], state.values.get(target))
        if check_results:
            result = content_hash(new)
            if result != payload["result"]:
                raise ValueError(f"event {seq}: replaying the patch gave {result}, "
                                 f"the ledger recorded {payload['result']}")
            state.hashes[target] = result
        elif known_value is not _UNKNOWN:  # the writer computed ``result`` from ``new``
            state.hashes[target] = payload["result"]
        else:
            state.hashes.pop(target, None)
        if new is None:
            state.values.pop(target, None)
        else:
            state.values[target] = new
        state.applied[payload["patch_hash"]] = seq
        state.pending.pop(payload["patch_hash"], None)
        if not payload.get("rollback_of"):
            _author(state, payload["author"])["rejections"] = 0
    elif kind == "PatchRejected":
        state.pending.pop(payload["patch_hash"], None)
        if payload.get("author") and payload["stage"] != "breaker":
            _author(state, payload["author"])["rejections"] += 1
    elif kind == "PatchPending":
        state.pending[payload["patch_hash"]] = {
            "envelope": payload["envelope"], "needs": payload["needs"], "seq": seq,
            "author": payload.get("author", ""),
        }
    elif kind == "AuthorPaused":
        entry = _author(state, payload["author"])
        entry["paused_until"] = payload["until"]
        entry["rejections"] = 0
    elif kind == "AuthorResumed":
        _author(state, payload["author"])["paused_until"] = None
    state.seq = seq
    state.last_hash = hash_bytes(body)
    if track_merkle:  # only the head state appends checkpoints; a replay need not
        state.merkle.append(body)
