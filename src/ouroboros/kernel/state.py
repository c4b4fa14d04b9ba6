"""State is a fold of the ledger: pure functions from events to values.

The state hash covers the targets' values only (the agent's behaviour), so a rollback that
restores the values restores the exact earlier state hash. Pending patches, circuit
breakers and registered witnesses are folded too, for the gates: all of it is the size of
the live state. What grows with history — which patch hashes were ever applied, undone or
charged — is the patch index (``patch_index``), kept by the backend, not in snapshots.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ouroboros.kernel.canonical import canonical_bytes, content_hash, hash_bytes
from ouroboros.kernel.keys import key_id_of, verify_signature
from ouroboros.kernel.merkle import MerkleAccumulator
from ouroboros.kernel.ops import apply_op, json_copy
from ouroboros.kernel.patch_index import PatchIndex, ReplayIndex
from ouroboros.kernel.trust import (
    TRUST_TARGET,
    approval_statement,
    distinct_keys,
    resume_statement,
)

GENESIS_PREV = "sha256:" + "0" * 64

KERNEL_KINDS = frozenset({
    "Genesis", "PatchApplied", "PatchRejected", "PatchPending", "PatchApproved",
    "BreakerTripped", "BreakerResumed", "Checkpoint", "EffectFailed", "WitnessAdded",
})


class FoldError(ValueError):
    """An event the fold cannot accept: the ledger holds a history no gate would allow."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"event {seq}: {message}")
        self.seq = seq


class LegacySnapshot(ValueError):
    """A snapshot written before targets kept their type: it cannot say which type set
    each target, so the state is folded from an older snapshot or from genesis instead."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"snapshot at seq {seq} predates the targets' types")
        self.seq = seq


@dataclass
class KernelState:
    seq: int = -1
    last_hash: str = GENESIS_PREV
    values: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Circuit breakers by subject (a verified key id, or ``<runtime key id>/<author>``).
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime_key: dict[str, str] = field(default_factory=dict)
    merkle: MerkleAccumulator = field(default_factory=MerkleAccumulator)
    #: The genesis hash: every patch names it, and the checkpoints' origin derives from it.
    ledger_id: str = ""
    witnesses: list[str] = field(default_factory=list)
    #: Target -> the patch its last change rolled back (while that change stands): the
    #: schema gate refuses that patch from the signed state itself, whatever the unsigned
    #: patch index says.
    rolled_back: dict[str, str] = field(default_factory=dict)
    #: Target -> the type of the patch that last set it (absent while the target is empty):
    #: the schema gate refuses a patch of another kind unless the root threshold signs it.
    types: dict[str, str] = field(default_factory=dict)
    #: Patch hash -> the type its target held before it, for each patch that changed a
    #: target's type (a root conversion, or a rollback of one): rolling that patch back
    #: restores the type (kept after: a later rollback across it may need it again). Only
    #: type changes are kept, so it grows with conversions, not with history.
    replaced_types: dict[str, str] = field(default_factory=dict)
    #: Which patches were applied, undone or charged (not part of snapshots).
    index: PatchIndex = field(default_factory=ReplayIndex, compare=False, repr=False)
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

    # -- the patch index -----------------------------------------------------------
    def live_seq(self, patch_hash: str) -> int | None:
        """Where the patch was applied, unless a rollback has undone it since."""
        record = self.index.record(patch_hash)
        if record is None or record.undone is not None:
            return None
        return record.applied

    def find_applied(self, prefix: str) -> list[str]:
        return self.index.find_applied(prefix)

    def breaker(self, subject: str) -> dict[str, Any]:
        return self.breakers.get(subject, {"rejections": 0, "paused_until": None})

    # -- copies and snapshots ------------------------------------------------------
    def copy(self) -> KernelState:
        return KernelState(self.seq, self.last_hash, json_copy(self.values),
                           json_copy(self.pending), json_copy(self.breakers),
                           dict(self.runtime_key), self.merkle.copy(), self.ledger_id,
                           list(self.witnesses), dict(self.rolled_back), dict(self.types),
                           dict(self.replaced_types), self.index, dict(self.hashes))

    def to_bytes(self, legacy: bool = False) -> bytes:
        """The snapshot form: everything but the patch index and the hash cache.
        ``legacy``: the form runtimes wrote before targets kept their type (``verify``
        compares such a snapshot with it)."""
        d = {"seq": self.seq, "last_hash": self.last_hash, "values": self.values,
             "pending": self.pending, "breakers": self.breakers,
             "runtime_key": self.runtime_key, "merkle": self.merkle.to_dict(),
             "ledger_id": self.ledger_id, "witnesses": self.witnesses,
             "rolled_back": self.rolled_back}
        if not legacy:
            d["types"], d["replaced_types"] = self.types, self.replaced_types
        return canonical_bytes(d)

    @classmethod
    def from_bytes(cls, data: bytes, index: PatchIndex | None = None, *,
                   legacy: bool = False) -> KernelState:
        """Raises ``LegacySnapshot`` for a snapshot without the targets' types, unless
        ``legacy``: then its ``types`` and ``replaced_types`` are left empty, which only
        a state that is shown, never decided on (``Runtime.state_at``), may use."""
        d = json.loads(data)
        if "types" not in d:
            if not legacy:
                raise LegacySnapshot(int(d["seq"]))
            d["types"], d["replaced_types"] = {}, {}
        return cls(d["seq"], d["last_hash"], d["values"], d["pending"], d["breakers"],
                   d["runtime_key"], MerkleAccumulator.from_dict(d["merkle"]), d["ledger_id"],
                   d["witnesses"], d["rolled_back"], d["types"], d["replaced_types"],
                   index if index is not None else ReplayIndex())


def patch_from_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return patch


def _breaker(state: KernelState, subject: str) -> dict[str, Any]:
    return state.breakers.setdefault(subject, {"rejections": 0, "paused_until": None})


_UNKNOWN: Any = object()


def _fold_applied(state: KernelState, seq: int, payload: dict[str, Any], check_results: bool,
                  known_value: Any) -> None:
    patch_hash = payload["patch_hash"]
    target = payload["target"]
    if known_value is not _UNKNOWN:
        new = known_value
    else:
        patch = patch_from_envelope(payload["envelope"])
        if patch["target"] != target:
            raise FoldError(seq, "payload target differs from the patch's")
        new = apply_op(patch["op"], state.values.get(target))
    if check_results:
        result = content_hash(new)
        if result != payload["result"]:
            raise FoldError(seq, f"replaying the patch gave {result}, the ledger recorded "
                                 f"{payload['result']}")
        state.hashes[target] = result
    elif known_value is not _UNKNOWN:  # the writer computed ``result`` from ``new``
        state.hashes[target] = payload["result"]
    else:
        state.hashes.pop(target, None)
    if new is None:
        state.values.pop(target, None)
    else:
        state.values[target] = new
    state.pending.pop(patch_hash, None)
    undid = payload.get("rollback_of")
    _fold_type(state, patch_hash, target, payload.get("type"), undid, new is None)
    if undid:
        state.rolled_back[target] = str(undid)
    else:
        state.rolled_back.pop(target, None)
    if not undid:
        for subject in payload.get("subjects", ()):
            _breaker(state, subject)["rejections"] = 0


def _fold_type(state: KernelState, patch_hash: str, target: str, ptype: str | None,
               undid: Any, emptied: bool) -> None:
    """The target's type after this patch: its own, or for a rollback of a patch that
    changed the type, the type that patch replaced; none once the target is empty."""
    prior = state.types.get(target)
    kind = ptype
    if undid:
        kind = state.replaced_types.get(str(undid), ptype)
    if emptied:
        state.types.pop(target, None)
    elif kind is not None:
        state.types[target] = kind
    if prior is not None and kind is not None and prior != kind:
        state.replaced_types[patch_hash] = prior


def _check_statement(state: KernelState, seq: int, kind: str, payload: dict[str, Any]) -> None:
    """A replay re-checks what humans signed into the ledger: each approval by a listed
    key, each breaker resume by the root threshold in force at the time."""
    policy = state.values[TRUST_TARGET]
    if kind == "PatchApproved":
        public = str(payload["public"])
        if key_id_of(bytes.fromhex(public)) != payload["approver"] or \
                payload["approver"] not in policy["keys"]:
            raise FoldError(seq, "approval by a key that is not in the trust policy")
        if not verify_signature(public, bytes.fromhex(payload["signature"]),
                                approval_statement(payload["patch_hash"])):
            raise FoldError(seq, "the approval's signature does not verify")
        return
    statement = resume_statement(state.ledger_id, payload["subject"], payload["paused_until"])
    good = [kid for kid, sig in payload["signatures"].items()
            if kid in policy["root"]["keys"] and kid in policy["keys"]
            and verify_signature(policy["keys"][kid]["public"], bytes.fromhex(sig), statement)]
    if distinct_keys(policy, good) < int(policy["root"]["threshold"]):
        raise FoldError(seq, "the breaker resume lacks the root threshold of valid signatures")


def fold_event(state: KernelState, seq: int, kind: str, payload: dict[str, Any],
               time: str, body: bytes, check_results: bool = False,
               track_merkle: bool = True, known_value: Any = _UNKNOWN,
               body_hash: str | None = None) -> None:
    """Apply one decoded event to ``state`` in place; raise ``FoldError`` for an event no
    gate would have let through. ``known_value``: the new value of a ``PatchApplied`` the
    caller has just computed (the appending writer), saving a re-apply; ``body_hash``: the
    body's hash if the caller has it already (a verifier's worker computed it)."""
    impossible = state.index.fold(seq, kind, payload)
    if impossible is not None:
        raise FoldError(seq, impossible)
    if kind == "Genesis":
        state.values.update(json_copy(payload["targets"]))
        state.hashes.clear()
        state.runtime_key = dict(payload["runtime_key"])
        state.ledger_id = hash_bytes(body)
    elif kind == "PatchApplied":
        _fold_applied(state, seq, payload, check_results, known_value)
    elif kind == "PatchRejected":
        state.pending.pop(payload["patch_hash"], None)
        for subject in payload.get("charged", ()):
            _breaker(state, subject)["rejections"] += 1
    elif kind == "PatchPending":
        state.pending[payload["patch_hash"]] = {
            "envelope": payload["envelope"], "needs": payload["needs"], "seq": seq,
            "author": payload.get("author", ""), "subjects": payload.get("subjects", []),
            "signers": payload.get("signers", []), "approvals": {},
        }
    elif kind == "PatchApproved":
        if check_results:
            _check_statement(state, seq, kind, payload)
        entry = state.pending.get(payload["patch_hash"])
        if entry is not None:
            entry["approvals"][payload["public"]] = payload["approver"]
    elif kind == "BreakerTripped":
        entry = _breaker(state, payload["subject"])
        entry["paused_until"] = payload["until"]
        entry["rejections"] = 0
    elif kind == "BreakerResumed":
        if check_results:
            _check_statement(state, seq, kind, payload)
        entry = _breaker(state, payload["subject"])
        entry["paused_until"] = None
        entry["rejections"] = 0
    elif kind == "WitnessAdded" and payload["path"] not in state.witnesses:
        state.witnesses.append(payload["path"])
    state.seq = seq
    state.last_hash = body_hash if body_hash is not None else hash_bytes(body)
    if track_merkle:  # only the head state appends checkpoints; a replay need not
        state.merkle.append(body)
