"""The ``Runtime`` facade: the one door through which anything changes.

The CLI, the HTTP API and every capability use this class. It owns the workspace (keys,
blobs, ledger backend), folds the ledger into state, runs the gates and appends events.
"""

from __future__ import annotations

import functools
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ouroboros.kernel.canonical import ABSENT, canonical_bytes, hash_bytes
from ouroboros.kernel.clock import Clock, SystemClock, iso, parse_iso
from ouroboros.kernel.dsse import envelope_from_dict, envelope_to_dict, new_envelope, sign_envelope
from ouroboros.kernel.errors import (
    InvalidPatch,
    NotFound,
    OuroError,
    PatchRejected,
    UsageError,
)
from ouroboros.kernel.gates import Gate, Submission, default_gates, run_gates
from ouroboros.kernel.keys import Keyring, Signer
from ouroboros.kernel.ledger import Event, VerifyReport, make_event, verify_events
from ouroboros.kernel.ops import json_copy
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import _UNKNOWN, KERNEL_KINDS, KernelState, fold_event
from ouroboros.kernel.trust import GATES_TARGET, SCHEMAS_TARGET, TRUST_TARGET, default_policy
from ouroboros.kernel.types import TypeRegistry
from ouroboros.kernel.workspace import Workspace, resolve_home
from ouroboros.storage.blobs import BlobStore
from ouroboros.storage.ledger import Head, LedgerBackend, RetryAppend, StoredEvent
from ouroboros.storage.sqlite import SQLiteLedger

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope

_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")
Item = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class SubmitOutcome:
    status: Literal["applied", "rejected", "pending"]
    patch_hash: str
    seq: int | None = None
    stage: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "patch_hash": self.patch_hash, "seq": self.seq,
                "stage": self.stage, "reason": self.reason}


@dataclass(frozen=True)
class ReplayReport:
    events: int
    state_hash: str
    snapshot_state_hash: str

    @property
    def consistent(self) -> bool:
        return self.state_hash == self.snapshot_state_hash


def default_gates_config() -> dict[str, Any]:
    from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG

    return {
        "approval": [{"types": ["file"], "targets": ["*"]},
                     {"types": ["skill_review"], "targets": ["*"]}],
        "audit": dict(DEFAULT_AUDIT_CONFIG),
        "breaker": {"threshold": 3, "cooldown_hours": 48},
    }


def _touches(kind: str, payload: dict[str, Any], sub: Submission) -> bool:
    """Whether an event another writer appended may change the gates' decision on ``sub``:
    it changed the same target or the kernel's configuration, decided this very patch, or
    moved its author's breaker. Anything else (other targets, capability events,
    checkpoints) leaves the decision as it was."""
    patch = sub.patch
    if patch is None or payload.get("patch_hash") == sub.patch_hash:
        return True
    if payload.get("author") == patch.author:
        return True
    if kind == "PatchApplied":
        target = str(payload.get("target", ""))
        return target == patch.target or target.startswith("kernel/")
    return kind in ("AuthorPaused", "AuthorResumed", "Genesis")


def _untouched(seen: list[Item], sub: Submission) -> bool:
    return not any(_touches(kind, payload, sub) for kind, payload in seen)


def _hash_of(data: bytes | None) -> str:
    return ABSENT if data is None else hash_bytes(data)


#: Patches this process built, by their canonical bytes: parsing is a pure function of the
#: bytes, so a payload we produced needs no second parse and canonical check.
_BUILT: OrderedDict[bytes, Patch] = OrderedDict()


def _remember(patch: Patch) -> bytes:
    payload = patch.canonical()
    _BUILT[payload] = patch
    if len(_BUILT) > 256:
        _BUILT.popitem(last=False)
    return payload


def _parse_patch(payload: bytes) -> tuple[Patch | None, str | None]:
    built = _BUILT.get(payload)
    if built is not None:
        return built, None
    try:
        patch = Patch.from_dict(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, f"payload is not JSON: {e}"
    except InvalidPatch as e:
        return None, e.message
    if patch.canonical() != payload:
        return None, "payload is not in RFC 8785 canonical form"
    return patch, None


class Runtime:
    def __init__(self, workspace: Workspace, backend: LedgerBackend | None = None, *,
                 clock: Clock | None = None, gates: Sequence[Gate] | None = None,
                 registry: TypeRegistry | None = None) -> None:
        self.workspace = workspace
        self.home = workspace.home
        self.backend: LedgerBackend = backend or SQLiteLedger(
            workspace.ledger_path, durable=bool(workspace.config.get("durable", False)))
        self.keyring = Keyring(workspace.keys_dir)
        self.blobs = BlobStore(workspace.blobs_dir)
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or TypeRegistry.with_core()
        self.gates: list[Gate] = list(gates) if gates is not None else default_gates()
        self.checkpoint_interval = int(workspace.config.get("checkpoint_interval", 1000))
        self.snapshot_interval = int(workspace.config.get("snapshot_interval", 1000))
        self._signer: Signer | None = None
        self._last_snapshot = -1
        self._state = self._load_state()

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def init(cls, home: Path | str | None = None, *, clock: Clock | None = None,
             checkpoint_interval: int = 1000, snapshot_interval: int = 1000,
             durable: bool = False) -> Runtime:
        """Create a workspace: root and runtime keys, and the signed genesis event."""
        path = resolve_home(home)
        ws = Workspace.create(path, {"version": 1, "runtime_key": "runtime",
                                     "root_keys": ["root"], "checkpoint_interval":
                                     checkpoint_interval, "snapshot_interval": snapshot_interval,
                                     "durable": durable})
        keyring = Keyring(ws.keys_dir)
        root, runtime = keyring.new("root"), keyring.new("runtime")
        policy = default_policy((root.key_id, root.public_hex),
                                (runtime.key_id, runtime.public_hex))
        clock = clock or SystemClock()
        genesis = make_event(0, "sha256:" + "0" * 64, "Genesis", {
            "version": 1,
            "runtime_key": {"id": runtime.key_id, "public": runtime.public_hex},
            "targets": {TRUST_TARGET: policy, GATES_TARGET: default_gates_config(),
                        SCHEMAS_TARGET: {}},
        }, iso(clock.now()), runtime)
        backend = SQLiteLedger(ws.ledger_path, durable=durable)
        backend.append(lambda head: [genesis] if head.next_seq == 0 else [])
        ws.config["genesis"] = hash_bytes(genesis.body)
        ws.save()
        return cls(ws, backend, clock=clock)

    @classmethod
    def open(cls, home: Path | str | None = None, *, clock: Clock | None = None,
             **kwargs: Any) -> Runtime:
        return cls(Workspace.load(resolve_home(home)), clock=clock, **kwargs)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = self.keyring.load(self.workspace.config.get("runtime_key", "runtime"))
        return self._signer

    # --------------------------------------------------------------------- state
    def _fold(self, state: KernelState, events: Iterable[StoredEvent],
              check_results: bool = False, track_merkle: bool = True,
              seen: list[Item] | None = None) -> KernelState:
        """Fold stored events into ``state``; collect their kinds and payloads in ``seen``."""
        for s in events:
            d = orjson.loads(s.body)
            fold_event(state, s.seq, d["kind"], d["payload"], d["time"], s.body, check_results,
                       track_merkle)
            if seen is not None:
                seen.append((d["kind"], d["payload"]))
        return state

    def _snapshot_state(self, at_most: int | None = None) -> KernelState:
        snap = self.backend.latest_snapshot(at_most)
        if snap is not None:
            seq, data = snap
            state = KernelState.from_bytes(data)
            stored = next(iter(self.backend.read(seq, seq + 1)), None)
            if stored is not None and hash_bytes(stored.body) == state.last_hash:
                return state
        return KernelState()

    def _load_state(self) -> KernelState:
        state = self._snapshot_state()
        self._last_snapshot = state.seq
        return self._fold(state, self.backend.read(state.seq + 1))

    def refresh(self) -> KernelState:
        """Catch up with events other processes appended."""
        head = self.backend.head()
        if head.next_seq - 1 > self._state.seq:
            self._catch_up()
        return self._state

    def _catch_up(self) -> list[Item]:
        """Fold every event after our head; return their kinds and payloads."""
        seen: list[Item] = []
        self._fold(self._state, self.backend.read(self._state.seq + 1), seen=seen)
        self._maybe_snapshot()
        return seen

    def _maybe_snapshot(self) -> None:
        if self._state.seq - self._last_snapshot >= self.snapshot_interval:
            self.backend.put_snapshot(self._state.seq, self._state.to_bytes())
            self._last_snapshot = self._state.seq

    def state_at(self, seq: int | None = None) -> KernelState:
        if seq is None:
            return self.refresh().copy()
        if seq < 0 or seq >= self.backend.count():
            raise NotFound(f"no event {seq} in the ledger (it has {self.backend.count()})")
        state = self._snapshot_state(seq)
        return self._fold(state, self.backend.read(state.seq + 1, seq + 1))

    def state(self, target: str | None = None, at: int | None = None) -> Any:
        """All target values (a dict), or one target's value (``None`` if absent)."""
        values = self.state_at(at).values
        return values if target is None else values.get(target)

    def value(self, target: str) -> Any:
        return json_copy(self.refresh().values.get(target))

    def state_hash(self, at: int | None = None) -> str:
        return self.state_at(at).state_hash()

    # ------------------------------------------------------------------- appends
    def _append(self, items: Sequence[Item], expect: KernelState,
                known: dict[str, Any] | None = None,
                still_valid: Callable[[list[Item]], bool] | None = None) -> list[StoredEvent]:
        """Append ``items`` after ``expect``'s head (or raise ``RetryAppend``) and fold them;
        return the events of ``items`` in order (without the checkpoints added between).
        ``known`` maps patch hashes to the new values the gates already computed, so the
        fold need not apply those patches a second time. With ``still_valid``, a head that
        moved is caught up inside the append's critical section, and the items go on top
        if ``still_valid`` says the events found there leave them as they are."""
        signer, time = self.signer, iso(self.clock.now())
        interval = self.checkpoint_interval
        built: list[tuple[StoredEvent, str, dict[str, Any]]] = []

        def build(head: Head) -> list[StoredEvent]:
            if head.next_seq != expect.seq + 1:
                if still_valid is None or expect is not self._state or head.next_seq <= expect.seq:
                    raise RetryAppend
                seen: list[Item] = []
                self._fold(expect, head.since(expect.seq + 1), seen=seen)
                if head.next_seq != expect.seq + 1 or not still_valid(seen):
                    raise RetryAppend
            built.clear()
            out: list[StoredEvent] = []
            merkle = expect.merkle.copy()
            prev, seq = expect.last_hash, head.next_seq
            for kind, payload in items:
                ev = make_event(seq, prev, kind, payload, time, signer)
                out.append(ev)
                built.append((ev, kind, payload))
                merkle.append(ev.body)
                prev, seq = hash_bytes(ev.body), seq + 1
                if interval and seq % interval == 0:
                    cp = make_event(seq, prev, "Checkpoint",
                                    {"tree_size": merkle.size, "root": merkle.root().hex()},
                                    time, signer)
                    out.append(cp)
                    built.append((cp, "Checkpoint", {}))
                    merkle.append(cp.body)
                    prev, seq = hash_bytes(cp.body), seq + 1
            return out

        self.backend.append(build)
        known = known or {}
        mine: list[StoredEvent] = []
        for ev, kind, payload in built:
            fold_event(self._state, ev.seq, kind, payload, time, ev.body,
                       known_value=known.get(payload.get("patch_hash", ""), _UNKNOWN))
            if kind != "Checkpoint":  # callers never append checkpoints themselves
                mine.append(ev)
        self._maybe_snapshot()
        return mine

    def _append_retrying(self, make: Callable[[KernelState], Sequence[Item]]
                         ) -> list[StoredEvent]:
        for _ in range(50):
            state = self.refresh()
            try:
                return self._append(make(state), state)
            except RetryAppend:
                continue
        raise OuroError("the ledger is too busy: gave up after 50 attempts", "try again")

    def record(self, kind: str, payload: dict[str, Any]) -> int:
        """Append a capability event (e.g. one summary per evolution generation)."""
        return self.record_batch([(kind, payload)])[0]

    def record_batch(self, items: Sequence[Item]) -> list[int]:
        """Append several capability events in one atomic transaction."""
        for kind, _payload in items:
            if not _KIND.match(kind) or kind in KERNEL_KINDS:
                raise UsageError(f"invalid event kind {kind!r}",
                                 "use a CamelCase name that is not a kernel event kind")
        return [s.seq for s in self._append_retrying(lambda _s: list(items))]

    # ------------------------------------------------------------------ patches
    def propose(self, type: str, target: str, *, value: Any = None,
                json_patch: list[dict[str, Any]] | None = None, diff: str | None = None,
                delete: bool = False, reasoning: str, tests: Sequence[str] = (),
                author: str = "operator") -> Patch:
        given = [value is not None, json_patch is not None, diff is not None, delete]
        if sum(given) != 1:
            raise UsageError("give exactly one of value, json_patch, diff or delete")
        if value is not None:
            op: dict[str, Any] = {"kind": "value", "value": value}
        elif json_patch is not None:
            op = {"kind": "json_patch", "ops": json_patch}
        elif diff is not None:
            op = {"kind": "diff", "diff": diff}
        else:
            op = {"kind": "delete"}
        base = self.refresh().target_hash(target)
        return Patch.from_dict({"type": type, "target": target, "base": base, "op": op,
                                "reasoning": reasoning, "test_requirements": list(tests),
                                "author": author, "created": iso(self.clock.now())})

    def sign(self, item: Patch | Envelope, key: str | Signer) -> Envelope:
        envelope = new_envelope(_remember(item)) if isinstance(item, Patch) else item
        sign_envelope(envelope, key if isinstance(key, Signer) else self.keyring.load(key))
        return envelope

    def propose_and_submit(self, *, keys: Sequence[str] = ("runtime",), **kwargs: Any
                           ) -> SubmitOutcome:
        envelope = new_envelope(_remember(self.propose(**kwargs)))
        for k in keys:
            self.sign(envelope, k)
        return self.submit(envelope)

    def _paused_until(self, state: KernelState, author: str) -> str | None:
        until = state.authors.get(author, {}).get("paused_until")
        if until and parse_iso(until) > self.clock.now():
            return str(until)
        return None

    def _decide(self, envelope: Envelope, state: KernelState, *, approved: bool = False,
                rollback_of: str | None = None) -> tuple[SubmitOutcome, list[Item], Submission]:
        payload: bytes = envelope.payload
        patch_hash = hash_bytes(payload)
        patch, error = _parse_patch(payload)
        sub = Submission(envelope, patch_hash, patch, error, state, self.registry,
                         approved=approved, rollback=rollback_of is not None)
        author = patch.author if patch else ""
        if patch_hash in state.pending and not approved:
            needs = state.pending[patch_hash]["needs"]
            return SubmitOutcome("pending", patch_hash, state.pending[patch_hash]["seq"],
                                 "approval", needs), [], sub
        until = self._paused_until(state, author) if patch else None
        if until is not None:
            stage, status, reason = "breaker", "rejected", f"author {author!r} is paused until {until} after repeated rejections"
        else:
            stage, result = run_gates(self.gates, sub)
            status, reason = result.status, result.reason
        if status == "rejected":
            items = self._rejection(state, patch_hash, stage, reason, author)
            return SubmitOutcome("rejected", patch_hash, None, stage, reason), items, sub
        if status == "deferred":
            return SubmitOutcome("pending", patch_hash, None, stage, reason), [
                ("PatchPending", {"patch_hash": patch_hash, "needs": reason, "author": author,
                                  "envelope": envelope_to_dict(envelope)})], sub
        assert patch is not None
        applied = {"patch_hash": patch_hash, "type": patch.type, "target": patch.target,
                   "author": author, "result": _hash_of(sub.context().new_bytes),
                   "inverse": sub.inverse, "envelope": envelope_to_dict(envelope)}
        if rollback_of:
            applied["rollback_of"] = rollback_of
        return SubmitOutcome("applied", patch_hash), [("PatchApplied", applied)], sub

    def _rejection(self, state: KernelState, patch_hash: str, stage: str, reason: str,
                   author: str, **extra: str) -> list[Item]:
        """The PatchRejected event, and AuthorPaused when it trips the author's breaker."""
        items: list[Item] = [("PatchRejected", {"patch_hash": patch_hash, "stage": stage,
                                                "reason": reason, "author": author, **extra})]
        breaker = state.values[GATES_TARGET]["breaker"]
        count = state.authors.get(author, {}).get("rejections", 0) + 1
        if author and stage != "breaker" and count >= int(breaker["threshold"]):
            until = self.clock.now() + timedelta(hours=float(breaker["cooldown_hours"]))
            items.append(("AuthorPaused", {"author": author, "until": iso(until),
                                           "reason": f"{count} consecutive rejections"}))
        return items

    def _run_effect(self, sub: Submission) -> None:
        ptype = sub.patch_type
        if ptype is None or ptype.effect is None or sub.patch is None:
            return
        try:
            ptype.effect(sub.patch, sub.new_value)
        except Exception as e:  # the patch stands in the ledger; the failure is recorded
            self._record_kernel("EffectFailed", {"patch_hash": sub.patch_hash,
                                                "error": f"{type(e).__name__}: {e}"})

    def _record_kernel(self, kind: str, payload: dict[str, Any]) -> int:
        return self._append_retrying(lambda _s: [(kind, payload)])[0].seq

    def submit(self, envelope: Envelope | dict[str, Any] | str | bytes, *,
               _approval: Item | None = None) -> SubmitOutcome:
        """Run the gates and append exactly one outcome (applied, rejected or pending)."""
        if isinstance(envelope, dict):
            envelope = envelope_from_dict(envelope)
        elif isinstance(envelope, str | bytes):
            from ouroboros.kernel.dsse import envelope_from_json

            envelope = envelope_from_json(envelope)
        decided: tuple[SubmitOutcome, list[Item], Submission] | None = None
        for attempt in range(50):
            # The head check inside the append makes a decision on a stale view impossible
            # to commit, so the first attempt skips the extra head query.
            state = self._state
            if decided is None:
                decided = self._decide(envelope, state, approved=_approval is not None)
            outcome, items, sub = decided
            if not items:
                if attempt == 0:
                    self.refresh()  # nothing to append means nothing checked the head
                    decided = None
                    continue
                return outcome
            approval = [_approval] if _approval is not None and outcome.status == "applied" else []
            items = [*approval, *items]
            known = {sub.patch_hash: sub.new_value} if outcome.status == "applied" else None
            try:
                # If another writer got in first, the decision still holds unless what it
                # appended touches this patch's inputs: then the append refuses.
                stored = self._append(items, state, known,
                                      still_valid=functools.partial(_untouched, sub=sub))
            except RetryAppend:
                self._catch_up()
                decided = None
                continue
            outcome = replace(outcome, seq=stored[len(approval)].seq)
            if outcome.status == "applied":
                self._run_effect(sub)
            return outcome
        raise OuroError("the ledger is too busy: gave up after 50 attempts", "try again")

    # ----------------------------------------------------------------- approvals
    def pending(self) -> dict[str, dict[str, Any]]:
        return dict(self.refresh().pending)

    def _find_pending(self, ident: str) -> tuple[str, dict[str, Any]]:
        pending = self.refresh().pending
        ident = ident if ident.startswith("sha256:") else "sha256:" + ident
        matches = [h for h in pending if h.startswith(ident)]
        if not matches:
            raise NotFound(f"no pending patch matches {ident}", "see `ouro log --kind PatchPending`")
        if len(matches) > 1:
            raise UsageError(f"{ident} matches {len(matches)} pending patches", "give more digits")
        return matches[0], pending[matches[0]]

    def _approver(self, key: str) -> Signer:
        signer = self.keyring.load(key)
        policy = self.refresh().values[TRUST_TARGET]
        allowed = signer.key_id in policy["root"]["keys"] or any(
            signer.key_id in d["keys"] and "approve" in d.get("rights", [])
            for d in policy["delegations"])
        if not allowed:
            raise UsageError(f"key {key!r} may not approve or reject patches",
                             "use a root key or one with the 'approve' right")
        return signer

    def approve(self, ident: str, key: str = "root") -> SubmitOutcome:
        patch_hash, entry = self._find_pending(ident)
        signer = self._approver(key)
        approval: Item = ("PatchApproved", {
            "patch_hash": patch_hash, "approver": signer.key_id,
            "signature": signer.sign(b"ouroboros-approve:" + patch_hash.encode()).hex()})
        return self.submit(envelope_from_dict(entry["envelope"]), _approval=approval)

    def reject(self, ident: str, reason: str, key: str = "root") -> SubmitOutcome:
        patch_hash, entry = self._find_pending(ident)
        signer = self._approver(key)
        author = entry.get("author", "")
        seq = self._append_retrying(lambda state: self._rejection(
            state, patch_hash, "approval", reason, author, rejected_by=signer.key_id))[0].seq
        return SubmitOutcome("rejected", patch_hash, seq, "approval", reason)

    # ----------------------------------------------------------------- breakers
    def breakers(self) -> dict[str, dict[str, Any]]:
        return {a: dict(v) for a, v in self.refresh().authors.items()}

    def resume(self, author: str) -> int:
        return self._record_kernel("AuthorResumed", {"author": author})

    # --------------------------------------------------------------- inspection
    def log(self, kind: str | None = None, since: int = 0, limit: int | None = None
            ) -> list[Event]:
        out: list[Event] = []
        for s in self.backend.read(since):
            ev = Event.decode(s)
            if kind is None or ev.kind == kind:
                out.append(ev)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def verify(self, workers: int | None = None) -> VerifyReport:
        return verify_events(self.backend.read(), workers=workers,
                             pinned_genesis=self.workspace.config.get("genesis"))

    def replay(self) -> ReplayReport:
        """Recompute state from genesis, checking every recorded result hash, and compare
        with the state reached through the latest snapshot."""
        try:
            full = self._fold(KernelState(), self.backend.read(), check_results=True,
                              track_merkle=False)
        except ValueError as e:
            raise OuroError(f"replay diverged: {e}") from e
        snap = self._load_state()
        return ReplayReport(full.seq + 1, full.state_hash(), snap.state_hash())

    # ------------------------------------------------------------------ rollback
    def rollback(self, *, to: int | None = None, patch: str | None = None,
                 keys: Sequence[str] | None = None) -> list[SubmitOutcome]:
        from ouroboros.kernel.rollback import plan_rollback

        keys = list(keys or self.workspace.config.get("root_keys", ["root"]))
        signers = [self.keyring.load(k) for k in keys]
        for _ in range(50):
            state = self.refresh()
            scratch = state.copy()
            items: list[Item] = []
            outcomes: list[SubmitOutcome] = []
            subs: list[Submission] = []
            for p, original in plan_rollback(self, state, to=to, patch=patch):
                p = replace(p, base=scratch.target_hash(p.target),
                            created=iso(self.clock.now()))
                envelope = new_envelope(p.canonical())
                for s in signers:
                    sign_envelope(envelope, s)
                outcome, new_items, rollback_sub = self._decide(envelope, scratch,
                                                                rollback_of=original)
                if outcome.status != "applied":
                    raise PatchRejected(outcome.patch_hash, outcome.stage,
                                        f"rollback of {original[:19]}… refused: {outcome.reason}")
                for kind, payload in new_items:
                    body = canonical_bytes({"kind": kind, "payload": payload})
                    fold_event(scratch, scratch.seq + 1, kind, payload, "", body)
                items += new_items
                outcomes.append(outcome)
                subs.append(rollback_sub)
            if not items:
                return []
            try:
                stored = self._append(items, state)
            except RetryAppend:
                continue
            seqs = [s.seq for s in stored]  # one PatchApplied per undone patch
            for rollback_sub in subs:  # effects follow the durable events, oldest undo first
                self._run_effect(rollback_sub)
            return [replace(o, seq=q) for o, q in zip(outcomes, seqs, strict=True)]
        raise OuroError("the ledger is too busy: gave up after 50 attempts", "try again")
