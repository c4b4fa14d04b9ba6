"""One submission, decided: parsing the payload, running the gates, and the events that
record the outcome. Pure functions of (envelope, state, gates); the ``Runtime`` appends
what they return.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ouroboros.kernel import breakers
from ouroboros.kernel.canonical import ABSENT, hash_bytes
from ouroboros.kernel.dsse import envelope_to_dict
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.gates import Gate, Submission, run_gates
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.types import TypeRegistry

if TYPE_CHECKING:
    # A type only: securesystemslib is loaded when an envelope is parsed, not by
    # `ouro state` (see tests/cli/test_startup_imports.py).
    from securesystemslib.dsse import Envelope

Item = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class SubmitOutcome:
    status: Literal["applied", "rejected", "pending"]
    patch_hash: str
    seq: int | None = None
    stage: str = ""
    reason: str = ""

    def at(self, seq: int) -> SubmitOutcome:
        """This outcome, recorded at ``seq`` (``dataclasses.replace`` costs microseconds
        more, on every submit)."""
        return SubmitOutcome(self.status, self.patch_hash, seq, self.stage, self.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "patch_hash": self.patch_hash, "seq": self.seq,
                "stage": self.stage, "reason": self.reason}


def touches(kind: str, payload: dict[str, Any], sub: Submission, applies: bool = False
            ) -> bool:
    """Whether an event another writer appended may change the gates' decision on ``sub``:
    it changed the same target or the kernel's configuration, decided this very patch, or
    moved one of its signers' breakers. Anything else (other targets, capability events,
    checkpoints) leaves the decision as it was. ``applies``: the decision is to apply, and
    another apply by the same signers only clears their rejection count, which no apply
    reads (without this, two processes of one author took turns refusing each other)."""
    patch = sub.patch
    if patch is None or payload.get("patch_hash") == sub.patch_hash:
        return True
    subjects = set(sub.subjects)
    if subjects and (subjects.intersection(payload.get("charged", ()))
                     or payload.get("subject") in subjects
                     or (subjects.intersection(payload.get("subjects", ()))
                         and not (applies and kind == "PatchApplied"))):
        return True
    if kind == "PatchApplied":
        target = str(payload.get("target", ""))
        return target == patch.target or target.startswith("kernel/")
    return kind == "Genesis"


def untouched(seen: list[Item], sub: Submission, applies: bool = False) -> bool:
    return not any(touches(kind, payload, sub, applies) for kind, payload in seen)


def hash_of(data: bytes | None) -> str:
    return ABSENT if data is None else hash_bytes(data)


#: Patches this process built, by their canonical bytes: parsing is a pure function of the
#: bytes, so a payload we produced needs no second parse and canonical check.
_BUILT: OrderedDict[bytes, Patch] = OrderedDict()


def remember(patch: Patch) -> bytes:
    payload = patch.canonical()
    _BUILT[payload] = patch
    if len(_BUILT) > 256:
        _BUILT.popitem(last=False)
    return payload


def parse_patch(payload: bytes) -> tuple[Patch | None, str | None]:
    built = _BUILT.get(payload)
    if built is not None:
        return built, None
    try:
        data = orjson.loads(payload)  # bounded nesting depth, strict UTF-8
    except orjson.JSONDecodeError as e:
        return None, f"payload is not JSON: {e}"
    try:
        patch = Patch.from_dict(data)
        canonical = patch.canonical()
    except InvalidPatch as e:
        return None, e.message
    except Exception as e:  # fail closed on anything the parser did not foresee
        return None, f"payload is not a patch: {type(e).__name__}: {e}"
    if canonical != payload:
        return None, "payload is not in RFC 8785 canonical form"
    return patch, None


#: Patches one signer (a key, or an author under the runtime key) may have waiting for
#: approval at once: an agent whose every patch waits for a human cannot bury the queue.
MAX_PENDING_PER_SIGNER = 50


def _queued(state: KernelState, subjects: Sequence[str]) -> int:
    """The pending patches any of ``subjects`` signed."""
    mine = set(subjects)
    return sum(1 for entry in state.pending.values() if mine.intersection(entry["subjects"]))


def decide(envelope: Envelope, state: KernelState, gates: Sequence[Gate],
       registry: TypeRegistry, now: datetime, *, approved: bool = False,
       approvers: frozenset[str] = frozenset(), rollback_of: str | None = None,
       assume_unrecorded: bool = False) -> tuple[SubmitOutcome, list[Item], Submission]:
    """The gates' decision on ``envelope`` against ``state``, and the events that record
    it (none for a patch already applied or pending). Pure: nothing is written. With
    ``assume_unrecorded`` the patch index is not asked (see ``Submission``)."""
    payload: bytes = envelope.payload
    patch_hash = hash_bytes(payload)
    patch, error = parse_patch(payload)
    sub = Submission(envelope, patch_hash, patch, error, state, registry,
                     now=now, approved=approved, approvers=approvers,
                     rollback=rollback_of is not None, assume_unrecorded=assume_unrecorded)
    author = patch.author if patch else ""
    if patch_hash in state.pending and not approved:
        needs = state.pending[patch_hash]["needs"]
        return SubmitOutcome("pending", patch_hash, state.pending[patch_hash]["seq"],
                             "approval", needs), [], sub
    record = sub.record
    live = record.applied if record is not None and record.undone is None else None
    if live is not None and not approved and rollback_of is None:
        # Idempotent: submitting an applied patch again changes nothing and says so.
        return SubmitOutcome("applied", patch_hash, live, "",
                             f"already applied at seq {live}"), [], sub
    stage, result = run_gates(list(gates), sub)
    if result.status == "rejected":
        items = breakers.rejection_items(state, sub.now, patch_hash, stage, result.reason,
                                         author, breakers.charges(sub, result))
        return SubmitOutcome("rejected", patch_hash, None, stage, result.reason), items, sub
    charged = sub.record.charged if sub.record is not None else None
    if result.status == "deferred" and charged is not None:
        # Rejected envelopes are public (in the ledger): a replay would cost its signers
        # nothing yet fill their review queue (and the reviewers' time) again.
        stage, reason = "approval", (
            f"patch was rejected before (seq {charged}); a reviewed patch is not queued "
            "for review again: make a new patch")
        items = breakers.rejection_items(state, sub.now, patch_hash, stage, reason, author, [])
        return SubmitOutcome("rejected", patch_hash, None, stage, reason), items, sub
    if result.status == "deferred" and (queued := _queued(state, sub.subjects)) \
            >= MAX_PENDING_PER_SIGNER:
        stage, reason = "approval", (
            f"{queued} patches of this signer already wait for approval (at most "
            f"{MAX_PENDING_PER_SIGNER}); a human approves or rejects some first")
        items = breakers.rejection_items(state, sub.now, patch_hash, stage, reason, author,
                                         breakers.charges(sub, result))
        return SubmitOutcome("rejected", patch_hash, None, stage, reason), items, sub
    if result.status == "deferred":
        return SubmitOutcome("pending", patch_hash, None, stage, result.reason), [
            ("PatchPending", {"patch_hash": patch_hash, "needs": result.reason,
                              "author": author, "subjects": list(sub.subjects),
                              "signers": sorted(sub.signatures.valid if sub.signatures
                                                else ()),
                              "envelope": envelope_to_dict(envelope)})], sub
    assert patch is not None
    applied = {"patch_hash": patch_hash, "type": patch.type, "target": patch.target,
               "author": author, "result": hash_of(sub.context().new_bytes),
               "inverse": sub.inverse, "envelope": envelope_to_dict(envelope)}
    if rollback_of:
        applied["rollback_of"] = rollback_of
    else:
        applied["subjects"] = list(sub.subjects)
    return SubmitOutcome("applied", patch_hash), [("PatchApplied", applied)], sub
