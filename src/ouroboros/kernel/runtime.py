"""The ``Runtime`` facade: the one door through which anything changes.

The CLI, the HTTP API and every capability use this class. It owns the workspace (keys,
blobs, ledger backend), folds the ledger into state, runs the gates and appends events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ouroboros.kernel import anchors, breakers
from ouroboros.kernel.approvals import check_reviewer, plan_approval
from ouroboros.kernel.canonical import canonical_bytes, hash_bytes
from ouroboros.kernel.clock import Clock, SystemClock, iso
from ouroboros.kernel.dsse import envelope_from_dict, new_envelope, sign_envelope
from ouroboros.kernel.errors import (
    IntegrityError,
    NotFound,
    OuroError,
    PatchRejected,
    UsageError,
)
from ouroboros.kernel.gates import STALE_BASE, Gate, Submission, default_gates
from ouroboros.kernel.keys import Keyring, Signer, verify_signature
from ouroboros.kernel.ledger import Event, VerifyReport, make_event
from ouroboros.kernel.merkle import (
    leaf_hash,
)
from ouroboros.kernel.note import Checkpoint, Verifier
from ouroboros.kernel.ops import json_copy
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.patch_index import StoredIndex, index_rows, raw
from ouroboros.kernel.proofs import (
    ConsistencyProof,
    InclusionProof,
    prove_consistency,
    prove_inclusion,
)
from ouroboros.kernel.state import (
    _UNKNOWN,
    GENESIS_PREV,
    KERNEL_KINDS,
    FoldError,
    KernelState,
    LegacySnapshot,
    fold_event,
    patch_from_envelope,
)
from ouroboros.kernel.submission import (
    Item,
    SubmitOutcome,
    decide,
    remember,
    untouched,
)
from ouroboros.kernel.trust import (
    GATES_TARGET,
    SCHEMAS_TARGET,
    TRUST_TARGET,
    default_policy,
    distinct_keys,
    key_names,
    resume_statement,
    with_grant,
    with_revocation,
)
from ouroboros.kernel.types import TypeRegistry
from ouroboros.kernel.verify import snapshot_problem, snapshot_statement, verify_ledger
from ouroboros.kernel.workspace import CONFIG_NAME, Workspace, resolve_home
from ouroboros.storage.backends import open_ledger
from ouroboros.storage.blobs import BlobStore
from ouroboros.storage.ledger import (
    Head,
    IndexRow,
    LedgerBackend,
    LedgerUnavailable,
    RetryAppend,
    Snapshot,
    StoredEvent,
)

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope

_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")


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
        "breaker": dict(breakers.DEFAULT_BREAKER_CONFIG),
    }


class Runtime:
    def __init__(self, workspace: Workspace, backend: LedgerBackend | None = None, *,
                 clock: Clock | None = None, gates: Sequence[Gate] | None = None,
                 registry: TypeRegistry | None = None) -> None:
        self.workspace = workspace
        self.home = workspace.home
        self.durable = bool(workspace.config.get("durable", False))
        self.backend: LedgerBackend = backend or _open_backend(workspace, self.durable)
        self.keyring = Keyring(workspace.keys_dir)
        self.blobs = BlobStore(workspace.blobs_dir)
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or TypeRegistry.with_core()
        self.gates: list[Gate] = list(gates) if gates is not None else default_gates()
        self.checkpoint_interval = int(workspace.config.get("checkpoint_interval", 1000))
        self.snapshot_interval = int(workspace.config.get("snapshot_interval", 1000))
        self._signer: Signer | None = None
        self._last_snapshot = -1
        #: Snapshots found untrustworthy on open (seq -> why); the state was rebuilt past
        #: them, and ``verify`` reports them as integrity errors.
        self.snapshot_problems: dict[int, str] = {}
        #: Witness directories the last checkpoint could not be written to (path -> why).
        self.witness_errors: dict[str, str] = {}
        self._index = StoredIndex(self.backend)
        self.snapshot_keep = int(workspace.config.get("snapshot_keep", 3))
        self.snapshot_keep_every = int(workspace.config.get("snapshot_keep_every", 100_000))
        self._state = self._load_state()
        self._check_anchors()

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def init(cls, home: Path | str | None = None, *, clock: Clock | None = None,
             checkpoint_interval: int = 1000, snapshot_interval: int = 1000,
             durable: bool = False, ledger: str | None = None) -> Runtime:
        """Create a workspace: root and runtime keys, the signed genesis event and the
        first signed checkpoint. ``ledger``: a ``postgresql://`` URL whose ledger (an empty
        one) this workspace uses instead of SQLite; it is stored without its password."""
        path = resolve_home(home)
        backend: LedgerBackend | None = None
        config: dict[str, Any] = {"version": 1, "runtime_key": "runtime",
                                  "root_keys": ["root"], "checkpoint_interval":
                                  checkpoint_interval, "snapshot_interval": snapshot_interval,
                                  "durable": durable}
        if ledger is not None:
            # Reach the server and check its ledger is empty before anything is written.
            if (path / CONFIG_NAME).exists():
                raise UsageError(f"a workspace already exists at {path}",
                                 "use it, or pick another --home")
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            try:
                backend = open_ledger(path, ledger, durable=durable, create=True)
                if backend.count():
                    backend.close()
                    raise UsageError(f"the ledger at {ledger_public(ledger)} already holds "
                                     "events", "use an empty database or another "
                                     "?ledger=NAME")
            except LedgerUnavailable as e:
                _remove_quietly(path, created)
                raise ledger_error(e) from e
            except BaseException:
                _remove_quietly(path, created)
                raise
            config["ledger"] = ledger_public(ledger)
        ws = Workspace.create(path, config)
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
        ledger_id = hash_bytes(genesis.body)
        if backend is None:
            backend = _open_backend(ws, durable)
        store = backend

        def seal(events: Sequence[StoredEvent]) -> None:
            if events:
                store.put_checkpoint(anchors.sign_checkpoint(
                    ledger_id, 1, leaf_hash(genesis.body), ledger_id, runtime))

        def first(head: Head) -> list[StoredEvent]:
            if head.next_seq != 0:  # another workspace got to this (shared) ledger first
                raise UsageError("the ledger was filled by someone else during `init`",
                                 "use an empty database or another ?ledger=NAME")
            return [genesis]

        backend.append(first, seal)
        ws.config["genesis"] = ledger_id
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

    @property
    def ledger_id(self) -> str:
        """The genesis hash: every patch for this ledger names it."""
        return self._state.ledger_id

    @property
    def verifier(self) -> Verifier:
        """The key that signs this ledger's checkpoints, as a C2SP note verifier."""
        return anchors.verifier_for(self._state.ledger_id, self._state.runtime_key["public"])

    # --------------------------------------------------------------------- state
    def _fold(self, state: KernelState, events: Iterable[StoredEvent],
              check_results: bool = False, track_merkle: bool = True,
              seen: list[Item] | None = None, signed: bool = False) -> KernelState:
        """Fold stored events into ``state``; collect their kinds and payloads in ``seen``.
        A history no gate would allow is an ``IntegrityError``. ``signed`` (events caught
        up from the database, which no signed anchor covers yet): each must also extend
        ``state`` (``_check_extends``) and carry the runtime key's signature."""
        for s in events:
            d = orjson.loads(s.body)
            if signed:
                _check_extends(state.seq, state.last_hash, s, d)
                if state.seq >= 0:
                    _check_signed(state, s)
            try:
                fold_event(state, s.seq, d["kind"], d["payload"], d["time"], s.body,
                           check_results, track_merkle)
            except FoldError as e:
                raise IntegrityError(str(e), seq=e.seq, hint="run `ouro verify`") from e
            if seen is not None:
                seen.append((d["kind"], d["payload"]))
        return state

    def _snapshot_state(self, at_most: int | None = None, *,
                        legacy: bool = False) -> KernelState:
        """The newest trustworthy snapshot at or before ``at_most``: signed by the runtime
        key and taken after the event the ledger holds at its seq. Others are skipped (and
        remembered for ``verify``), down to a fold from genesis. ``legacy``: a snapshot
        from before the type lock counts too (its types left empty; see ``state_at``)."""
        public = self._genesis_public()
        while True:
            snap = self.backend.latest_snapshot(at_most)
            if snap is None:
                return KernelState(index=self._index)
            problem = snapshot_problem(snap, public) if public else "no genesis"
            if problem is None:
                try:
                    state = KernelState.from_bytes(snap.data, self._index, legacy=legacy)
                except LegacySnapshot:  # no types: fold them from an older one (or genesis)
                    self._legacy_snapshot = True
                    at_most = snap.seq - 1
                    continue
                stored = next(iter(self.backend.read(snap.seq, snap.seq + 1)), None)
                if (state.seq == snap.seq and stored is not None
                        and hash_bytes(stored.body) == state.last_hash):
                    return state
                problem = f"snapshot at seq {snap.seq} does not match the event stored there"
            self.snapshot_problems[snap.seq] = problem
            at_most = snap.seq - 1

    def _genesis_public(self) -> str:
        first = next(iter(self.backend.read(0, 1)), None)
        if first is None:
            return ""
        return str(orjson.loads(first.body)["payload"]["runtime_key"]["public"])

    def _load_state(self) -> KernelState:
        self._legacy_snapshot = False
        state = self._snapshot_state()
        self._last_snapshot = state.seq
        state = self._fold(state, self.backend.read(state.seq + 1))
        if self._legacy_snapshot and state.seq > self._last_snapshot:
            self._resnapshot(state)
        return state

    def _resnapshot(self, state: KernelState) -> None:
        """After a fold past snapshots of the form before the type lock: one current
        snapshot at the head, so the next open (a read-only command never appends, so
        `_maybe_snapshot` never runs) starts there instead of folding from genesis again.
        A snapshot is a cache: if it cannot be written (a read-only ledger, a key that
        needs a passphrase, a busy lock), the open goes on without it."""
        try:
            self._put_snapshot(state)
        except Exception:  # never fail an open over a cache
            return
        self._last_snapshot = state.seq

    def _put_snapshot(self, state: KernelState) -> None:
        data = state.to_bytes()
        self.backend.put_snapshot(Snapshot(state.seq, data,
                                           self.signer.sign(snapshot_statement(data))))

    def _check_anchors(self) -> None:
        """The ledger must hold every event its signed checkpoints (local and witnesses)
        commit to: a shortened or rewritten ledger refuses to open."""
        if self._state.seq < 0:
            raise IntegrityError("the ledger is empty (no genesis)", seq=0,
                                 hint=_interrupted_init(self.workspace))
        pinned_genesis = self.workspace.config.get("genesis")
        if pinned_genesis is not None and self._state.ledger_id != pinned_genesis:
            raise IntegrityError("the ledger's genesis differs from the one pinned in the "
                                 "workspace: its ledger URL names another workspace's ledger",
                                 seq=0, hint="point the workspace at its own ledger, or "
                                 "restore the database from a backup")
        try:
            known = anchors.read_checkpoints(self.backend,
                                             self._witnesses(self._state.witnesses),
                                             self.verifier)
        except IntegrityError as e:
            if self._state.seq == 0 and not e.hint:  # the genesis alone: nothing to lose
                e.hint = _interrupted_init(self.workspace)
            raise
        count = self.backend.count()

        def event_hash(seq: int) -> str | None:
            if seq == self._state.seq:  # the head just folded (a query saved per open)
                return self._state.last_hash
            stored = next(iter(self.backend.read(seq, seq + 1)), None)
            return None if stored is None else hash_bytes(stored.body)

        for k in known:
            anchors.check_against_head(k, count, event_hash)
        # Events after the newest signed anchor (the snapshot, or a checkpoint's head):
        # another process's, or rows added in the database. Each must extend the one
        # before and carry the runtime key's signature, so this runtime never serves or
        # signs on top of a row nobody signed (rows below the anchor are `verify`'s).
        pinned = max([k.checkpoint.size - 1 for k in known] + [self._last_snapshot])
        if pinned < self._state.seq:
            seq, last = pinned, event_hash(pinned) if pinned >= 0 else GENESIS_PREV
            for stored in self.backend.read(pinned + 1, self._state.seq + 1):
                _check_extends(seq, last, stored, orjson.loads(stored.body))
                _check_signed(self._state, stored)
                seq, last = stored.seq, hash_bytes(stored.body)
            if (seq, last) != (self._state.seq, self._state.last_hash):
                raise IntegrityError(f"the ledger changed while it was opened (event {seq})",
                                     seq=seq, hint="open it again; run `ouro verify`")

    def _witnesses(self, paths: Iterable[str]) -> list[anchors.Witness]:
        return [anchors.Witness(Path(p), self._state.ledger_id) for p in paths]

    def refresh(self) -> KernelState:
        """Catch up with events other processes appended."""
        head = self.backend.head()
        if head.next_seq - 1 > self._state.seq:
            self._catch_up()
        elif head.next_seq - 1 < self._state.seq:
            raise _shrank(self._state.seq, head.next_seq)
        return self._state

    def _catch_up(self) -> list[Item]:
        """Fold every event after our head; return their kinds and payloads."""
        seen: list[Item] = []
        self._fold(self._state, self.backend.read(self._state.seq + 1), seen=seen,
                   signed=True)
        self._maybe_snapshot()
        return seen

    def _maybe_snapshot(self) -> None:
        if self._state.seq - self._last_snapshot >= self.snapshot_interval:
            self._put_snapshot(self._state)
            self.backend.prune_snapshots(self.snapshot_keep, self.snapshot_keep_every)
            self._last_snapshot = self._state.seq

    def state_at(self, seq: int | None = None) -> KernelState:
        """The state right after event ``seq`` (the head's when ``None``), to be shown:
        its values, pending patches and hashes are exact. A past state may start from a
        snapshot written before the type lock (values need no types; a fold from genesis
        took 1.7 s at 100k events), so its ``types`` may lack targets set before that
        snapshot: no gate or plan may decide on a past state's types."""
        if seq is None:
            return self.refresh().copy()
        if seq < 0 or seq >= self.backend.count():
            raise NotFound(f"no event {seq} in the ledger (it has {self.backend.count()})")
        state = self._snapshot_state(seq, legacy=True)
        return self._fold(state, self.backend.read(state.seq + 1, seq + 1))

    def state(self, target: str | None = None, at: int | None = None) -> Any:
        """All target values (a dict), or one target's value (``None`` if absent)."""
        values = self.state_at(at).values
        return values if target is None else values.get(target)

    def value(self, target: str) -> Any:
        return json_copy(self.refresh().values.get(target))

    def read(self, target: str) -> tuple[Any, str]:
        """A target's value and its content hash, read together: pass the hash as
        ``base`` to ``propose`` and the patch applies only if nothing changed in between."""
        state = self.refresh()
        return json_copy(state.values.get(target)), state.target_hash(target)

    def applied_at(self, patch_hash: str) -> int | None:
        """The seq of the patch's latest ``PatchApplied`` (even if rolled back since)."""
        record = self._index.record(patch_hash)
        return None if record is None else record.applied

    def state_hash(self, at: int | None = None) -> str:
        return self.state_at(at).state_hash()

    # ------------------------------------------------------------------- appends
    def _append(self, items: Sequence[Item], expect: KernelState,
                known: dict[str, Any] | None = None,
                still_valid: Callable[[list[Item]], bool] | None = None,
                unrecorded: Sequence[bytes] = ()) -> list[StoredEvent]:
        """Append ``items`` after ``expect``'s head (or raise ``RetryAppend``) and fold them;
        return the events of ``items`` in order (without the checkpoints added between).
        ``known`` maps patch hashes to the new values the gates already computed, so the
        fold need not apply those patches a second time. With ``still_valid``, a head that
        moved is caught up inside the append's critical section, and the items go on top
        if ``still_valid`` says the events found there leave them as they are. Once the
        events are committed, and before the writers' lock is released, a signed
        checkpoint of the new head is published (beside the ledger and to each witness).
        ``unrecorded``: patch hashes decided on without asking the patch index (the
        backend refuses with ``IndexMoved`` if it holds one)."""
        signer, time = self.signer, iso(self.clock.now())
        interval = self.checkpoint_interval
        built: list[tuple[StoredEvent, str, dict[str, Any], str]] = []
        tip: list[Any] = []  # the Merkle tree and head hash the committed events leave

        def build(head: Head) -> list[StoredEvent]:
            if head.next_seq <= expect.seq:  # events this process has folded are gone
                raise _shrank(expect.seq, head.next_seq)
            if head.next_seq != expect.seq + 1:
                if still_valid is None or expect is not self._state:
                    raise RetryAppend
                seen: list[Item] = []
                self._fold(expect, head.since(expect.seq + 1), seen=seen, signed=True)
                if head.next_seq != expect.seq + 1 or not still_valid(seen):
                    raise RetryAppend
            built.clear()
            rows: list[IndexRow] = []
            out: list[StoredEvent] = []
            merkle = expect.merkle.copy()
            prev, seq = expect.last_hash, head.next_seq
            for kind, payload in items:
                ev = make_event(seq, prev, kind, payload, time, signer)
                rows += index_rows(seq, kind, payload)
                out.append(ev)
                merkle.append(ev.body)
                prev, seq = hash_bytes(ev.body), seq + 1
                built.append((ev, kind, payload, prev))
                if interval and seq % interval == 0:
                    cp = make_event(seq, prev, "Checkpoint",
                                    {"tree_size": merkle.size, "root": merkle.root().hex()},
                                    time, signer)
                    out.append(cp)
                    merkle.append(cp.body)
                    prev, seq = hash_bytes(cp.body), seq + 1
                    built.append((cp, "Checkpoint", {}, prev))
            tip[:] = [merkle, prev]
            head.index(rows)
            return out

        def seal(_events: Sequence[StoredEvent]) -> None:
            merkle, prev = tip
            paths = [*expect.witnesses, *(str(p["path"]) for k, p in items
                                          if k == "WitnessAdded")]
            note = anchors.sign_checkpoint(self._state.ledger_id, merkle.size, merkle.root(),
                                           prev, signer)
            anchors.publish(self.backend, note, self._witnesses(dict.fromkeys(paths)),
                            self.durable, self.witness_errors)

        self.backend.append(build, seal, unrecorded)
        known = known or {}
        mine: list[StoredEvent] = []
        state = self._state
        # The build already hashed these bodies into a copy of ``expect``'s Merkle tree;
        # when that is the head state, the fold takes the hashes and the tree as they are.
        reuse = expect is state
        for ev, kind, payload, body_hash in built:
            fold_event(state, ev.seq, kind, payload, time, ev.body, track_merkle=not reuse,
                       known_value=known.get(payload.get("patch_hash", ""), _UNKNOWN),
                       body_hash=body_hash)
            if kind != "Checkpoint":  # callers never append checkpoints themselves
                mine.append(ev)
        if reuse and built:
            state.merkle = tip[0]
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
                author: str = "operator", base: str | None = None,
                expires: datetime | str | None = None) -> Patch:
        """A patch for this ledger. ``base`` is the content hash the change was computed
        from (``read`` returns it); without it the current value's hash is used, which is
        right only when the change does not depend on the value read earlier."""
        return self._propose(self.refresh(), type, target, value=value,
                             json_patch=json_patch, diff=diff, delete=delete,
                             reasoning=reasoning, tests=tests, author=author, base=base,
                             expires=expires)

    def _propose(self, state: KernelState, type: str, target: str, *, value: Any = None,
                 json_patch: list[dict[str, Any]] | None = None, diff: str | None = None,
                 delete: bool = False, reasoning: str, tests: Sequence[str] = (),
                 author: str = "operator", base: str | None = None,
                 expires: datetime | str | None = None) -> Patch:
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
        data: dict[str, Any] = {
            "type": type, "target": target,
            "base": base if base is not None else state.target_hash(target), "op": op,
            "reasoning": reasoning, "test_requirements": list(tests), "author": author,
            "created": iso(self.clock.now()), "ledger": state.ledger_id}
        if expires is not None:
            data["expires"] = iso(expires) if isinstance(expires, datetime) else expires
        return Patch.from_dict(data)

    def sign(self, item: Patch | Envelope, key: str | Signer) -> Envelope:
        envelope = new_envelope(remember(item)) if isinstance(item, Patch) else item
        sign_envelope(envelope, key if isinstance(key, Signer) else self.keyring.load(key))
        return envelope

    def propose_and_submit(self, *, keys: Sequence[str] = ("runtime",), **kwargs: Any
                           ) -> SubmitOutcome:
        """Propose, sign with ``keys`` and submit. Without a ``base`` the change is a blind
        write: it is proposed on this process's last view (no head query) and, should
        another writer have changed the target since, proposed and signed again on the
        view the append found, so its base is the value it replaces when it is applied."""
        def signed(state: KernelState) -> Envelope:
            envelope = new_envelope(remember(self._propose(state, **kwargs)))
            for k in keys:
                self.sign(envelope, k)
            return envelope

        if kwargs.get("base") is not None:
            return self.submit(signed(self.refresh()))
        return self.submit(signed(self._state), _rebase=signed)

    def compare_and_swap(self, type: str, target: str, expected: str, *,
                         keys: Sequence[str] = ("runtime",), **kwargs: Any) -> SubmitOutcome:
        """Apply the change only if ``target``'s content hash is still ``expected``;
        otherwise the outcome is a stale-base rejection and nothing changes."""
        return self.propose_and_submit(type=type, target=target, base=expected, keys=keys,
                                       **kwargs)

    def update(self, type: str, target: str, change: Callable[[Any], Any], *,
               reasoning: str, author: str = "operator", keys: Sequence[str] = ("runtime",),
               tests: Sequence[str] = (), attempts: int = 100) -> SubmitOutcome:
        """Read-modify-write without lost updates: read the value and its hash, compute
        ``change(value)`` (``None`` deletes), and compare-and-swap; when another writer got
        there first, read again and retry. Each lost race is one stale-base rejection in
        the ledger (counted against no one)."""
        for _ in range(attempts):
            value, base = self.read(target)
            new = change(json_copy(value))
            outcome = self.compare_and_swap(type, target, base, keys=keys, reasoning=reasoning,
                                            author=author, tests=tests, value=new,
                                            delete=new is None)
            if outcome.status == "rejected" and outcome.reason.startswith(STALE_BASE):
                continue
            return outcome
        raise OuroError(f"{target!r} kept changing: gave up after {attempts} attempts",
                        "try again, or reduce contention on this target")

    def _decide(self, envelope: Envelope, state: KernelState, *, approved: bool = False,
                approvers: frozenset[str] = frozenset(), rollback_of: str | None = None,
                assume_unrecorded: bool = False
                ) -> tuple[SubmitOutcome, list[Item], Submission]:
        return decide(envelope, state, self.gates, self.registry, self.clock.now(),
                      approved=approved, approvers=approvers, rollback_of=rollback_of,
                      assume_unrecorded=assume_unrecorded)

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
               _approval: Item | None = None,
               _rebase: Callable[[KernelState], Envelope] | None = None) -> SubmitOutcome:
        """Run the gates and append exactly one outcome (applied, rejected or pending).
        Submitting an applied (or pending) patch again appends nothing and returns its
        status."""
        if isinstance(envelope, dict):
            envelope = envelope_from_dict(envelope)
        elif isinstance(envelope, str | bytes):
            from ouroboros.kernel.dsse import envelope_from_json

            envelope = envelope_from_json(envelope)
        decided: tuple[SubmitOutcome, list[Item], Submission] | None = None
        patch: Patch | None = None
        for attempt in range(50):
            # The head check inside the append makes a decision on a stale view impossible
            # to commit, so the first attempt skips the extra head query; it also takes the
            # patch for one the index has never seen (nearly every submission) and lets the
            # append check that, which saves the lookup's round trip on PostgreSQL.
            state = self._state
            if (decided is None and _rebase is not None and patch is not None
                    and patch.base != state.target_hash(patch.target)):
                envelope = _rebase(state)  # a blind write whose target moved under it
            if decided is None:
                # (Not for a last approval: its retries go back to `approve`, so an index
                # that holds the patch would refuse every attempt.)
                decided = self._decide(envelope, state, approved=_approval is not None,
                                       approvers=_approvers(state, _approval),
                                       assume_unrecorded=attempt == 0 and _approval is None)
            outcome, items, sub = decided
            patch = sub.patch
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
                                      still_valid=functools.partial(
                                          untouched, sub=sub,
                                          applies=outcome.status == "applied"),
                                      unrecorded=[raw(sub.patch_hash)]
                                      if sub.assume_unrecorded else ())
            except RetryAppend:
                if _approval is not None:
                    raise  # `approve` plans again: the patch may be decided by now
                self._catch_up()
                decided = None
                continue
            outcome = outcome.at(stored[len(approval)].seq)
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

    def approve(self, ident: str, key: str = "root") -> SubmitOutcome:
        """Approve a pending patch with ``key``. When the approvals its rule asks for are
        complete the gates run again and the patch applies with its last approval, in one
        transaction; until then the approval alone is recorded (status ``pending``)."""
        signer = self.keyring.load(key)
        for _ in range(50):
            patch_hash, entry = self._find_pending(ident)
            state = self._state
            plan = plan_approval(state, patch_hash, entry, signer, key, self.clock.now())
            try:
                if plan.complete:
                    return self.submit(envelope_from_dict(entry["envelope"]),
                                       _approval=plan.item)
                [stored] = self._append([plan.item], state)
            except RetryAppend:
                # Another writer touched this patch (rejected, approved or applied it) or
                # the rules: find it pending again and plan again, or say it is not.
                continue
            return SubmitOutcome("pending", patch_hash, stored.seq, "approval",
                                 f"{plan.have} of {plan.needed} approvals")
        raise OuroError("the ledger is too busy: gave up after 50 attempts", "try again")

    def reject(self, ident: str, reason: str, key: str = "root") -> SubmitOutcome:
        """Reject a pending patch; it counts against its signers' breakers like any
        rejection they caused."""
        patch_hash, entry = self._find_pending(ident)
        signer = self.keyring.load(key)
        patch = Patch.from_dict(patch_from_envelope(entry["envelope"]))
        check_reviewer(self.refresh(), signer, key, patch, self.clock.now())
        author = entry.get("author", "")

        def items(state: KernelState) -> list[Item]:
            # Judged on the state the rejection is appended to (the append refuses a head
            # that moved): the patch still pending, the reviewer's right still there.
            if patch_hash not in state.pending:  # another reviewer decided it meanwhile
                raise NotFound(f"no pending patch matches {patch_hash}: it was decided "
                               "meanwhile", "see `ouro log`")
            check_reviewer(state, signer, key, patch, self.clock.now())
            record = state.index.record(patch_hash)
            charged = ([] if record is not None and record.charged is not None
                       else list(entry.get("subjects", [])))
            return breakers.rejection_items(state, self.clock.now(), patch_hash, "approval",
                                            reason, author, charged, rejected_by=signer.key_id)

        seq = self._append_retrying(items)[0].seq
        return SubmitOutcome("rejected", patch_hash, seq, "approval", reason)

    # --------------------------------------------------------------------- trust
    def grant(self, keys: Sequence[str], *, types: Sequence[str], targets: Sequence[str] = ("*",),
              threshold: int = 1, rights: Sequence[str] = (), expires: datetime | None = None,
              name: str | None = None, sign_with: Sequence[str] | None = None) -> SubmitOutcome:
        """Delegate ``types`` on ``targets`` to ``threshold`` of the keyring keys ``keys``
        (a ``trust`` patch signed by the root key(s), made against the policy it read)."""
        if expires is not None:
            # A delegation expired when granted never works, yet `trust show` lists it and
            # the operator believes it exists: refuse it before anything is signed.
            now = self.clock.now()
            if expires.tzinfo is None:  # local time, as `iso` reads it when storing it
                expires = expires.astimezone()
            if expires <= now:
                raise UsageError(f"--expires: expiry {iso(expires)} is not in the future "
                                 f"(now {iso(now)}); a delegation that expires before it is "
                                 "granted never works",
                                 "give a time after now, e.g. 30d, 12h or a later date "
                                 "such as 2027-01-31")
        ids = dict(self.keyring.public(k) for k in keys)
        name = name or "+".join(keys)
        policy, base = self.read(TRUST_TARGET)
        try:
            new = with_grant(policy, name, ids, list(types), list(targets), threshold,
                             list(rights), iso(expires) if expires is not None else None)
        except ValueError as e:
            raise UsageError(str(e)) from e
        return self._change_trust(new, base, f"grant {name}: {','.join(types)} on "
                                  f"{','.join(targets)}", sign_with)

    def revoke(self, key: str, *, reason: str = "", sign_with: Sequence[str] | None = None
               ) -> tuple[SubmitOutcome, list[str]]:
        """Revoke a key (a keyring name, a name in the policy, or a key id prefix): its
        signatures are refused from then on, by name. Returns the outcome and what the
        revocation removed."""
        policy, base = self.read(TRUST_TARGET)
        kid = _policy_key(policy, key, self.keyring)
        if kid not in policy["keys"]:
            raise NotFound(f"key {key!r} ({kid[:12]}…) is not in the trust policy",
                           "see `ouro trust show`")
        try:
            new, notes = with_revocation(policy, kid, iso(self.clock.now()), reason)
        except ValueError as e:
            raise UsageError(str(e)) from e
        outcome = self._change_trust(new, base, f"revoke {key}" + (f": {reason}" if reason else ""),
                                     sign_with)
        return outcome, notes

    def _change_trust(self, policy: dict[str, Any], base: str, reasoning: str,
                      sign_with: Sequence[str] | None) -> SubmitOutcome:
        patch = self.propose("trust", TRUST_TARGET, value=policy, base=base, author="operator",
                             reasoning=reasoning)
        envelope = new_envelope(remember(patch))
        for k in sign_with or self.workspace.config.get("root_keys", ["root"]):
            self.sign(envelope, k)
        return self.submit(envelope)

    # ----------------------------------------------------------------- breakers
    def breakers(self) -> dict[str, dict[str, Any]]:
        """Every breaker by subject, with the name people use for it (``label``)."""
        state = self.refresh()
        return {s: {**v, "label": breakers.label(state, s)} for s, v in state.breakers.items()}

    def paused_until(self, who: str) -> str | None:
        """When ``who``'s pause ends (``None`` if it is not paused); see ``resume``."""
        state = self.refresh()
        return breakers.paused_until(state, breakers.resolve(state, who), self.clock.now())

    def resume(self, who: str, keys: Sequence[str] | None = None) -> int:
        """Lift a pause early: ``who`` is a key name or id, or an author the runtime key
        signs for. Needs the root threshold; the signatures go into the ledger."""
        signers = [self.keyring.load(k)
                   for k in keys or self.workspace.config.get("root_keys", ["root"])]
        state = self.refresh()
        subject = breakers.resolve(state, who)
        until = state.breaker(subject).get("paused_until")
        if not until:
            raise UsageError(f"{who} is not paused", "see `ouro breakers`")
        policy = state.values[TRUST_TARGET]
        roots = {s.key_id for s in signers} & set(policy["root"]["keys"])
        if distinct_keys(policy, roots) < int(policy["root"]["threshold"]):
            raise UsageError(f"resuming a breaker needs {policy['root']['threshold']} root "
                             "signature(s)", "sign with the root key(s): --key root")
        statement = resume_statement(state.ledger_id, subject, str(until))
        payload = {"subject": subject, "paused_until": until,
                   "signatures": {s.key_id: s.sign(statement).hex() for s in signers
                                  if s.key_id in roots}}
        return self._record_kernel("BreakerResumed", payload)

    # ------------------------------------------------------------------ witnesses
    def add_witness(self, path: str | Path) -> Path:
        """Keep a copy of every future checkpoint in directory ``path`` (created if needed)
        and record it in the ledger; it gets the current checkpoint at once."""
        root = anchors.witness_path(path)
        state = self.refresh()
        if str(root) in state.witnesses:
            return root
        anchors.Witness(root, state.ledger_id).enrol(self.verifier)
        self._record_kernel("WitnessAdded", {"path": str(root), "vkey": self.verifier.vkey()})
        if str(root) in self.witness_errors:
            raise UsageError(f"cannot write to witness {root}: {self.witness_errors[str(root)]}")
        return root

    def witnesses(self) -> list[str]:
        return list(self.refresh().witnesses)

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

    def verify(self, workers: int | None = None, witnesses: Sequence[str | Path] = ()
               ) -> VerifyReport:
        """Check the chain, replay the history, check every snapshot and compare the
        ledger with every signed checkpoint (local, registered witnesses, ``witnesses``)."""
        if self.snapshot_problems:
            seq, problem = min(self.snapshot_problems.items())
            raise IntegrityError(problem, seq=seq)
        paths = [*self.refresh().witnesses, *(str(anchors.witness_path(w)) for w in witnesses)]
        return verify_ledger(self.backend, pinned_genesis=self.workspace.config.get("genesis"),
                             witnesses=paths, workers=workers)

    def replay(self) -> ReplayReport:
        """Recompute state from genesis, checking every recorded result hash, and compare
        with the state reached through the latest snapshot."""
        full = self._fold(KernelState(), self.backend.read(), check_results=True,
                          track_merkle=False)
        snap = self._load_state()
        return ReplayReport(full.seq + 1, full.state_hash(), snap.state_hash())

    # ------------------------------------------------------------------- proofs
    def checkpoint(self) -> Checkpoint:
        """The latest signed checkpoint (verified)."""
        return Checkpoint.open(self.checkpoint_note(), self.verifier)

    def checkpoint_note(self) -> bytes:
        """The latest signed checkpoint as its C2SP signed note, verified, verbatim."""
        note = self.backend.get_checkpoint()
        if note is None:
            raise IntegrityError("the local checkpoint is missing")
        Checkpoint.open(note, self.verifier)  # never hand out a note that does not verify
        return note

    def inclusion_proof(self, seq: int) -> InclusionProof:
        """A C2SP tlog-proof that event ``seq`` is in the log of the latest checkpoint."""
        note = self.backend.get_checkpoint()
        if note is None:
            raise IntegrityError("the local checkpoint is missing")
        size = Checkpoint.open(note, self.verifier).size
        if not 0 <= seq < size:
            raise NotFound(f"no event {seq} under the latest checkpoint (size {size})")
        proof = prove_inclusion(self.backend.read(0, size), seq, size, note)
        proof.check(self.verifier)  # never hand out a proof that does not verify
        return proof

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        """A proof that the log at size ``new`` (default: the latest checkpoint) extends
        the log at size ``old``, with a signed checkpoint for each size."""
        latest = self.checkpoint()
        new = latest.size if new is None else new
        if not 0 < old <= new <= latest.size:
            raise UsageError(f"sizes must satisfy 0 < OLD <= NEW <= {latest.size}",
                             "the latest checkpoint's size is the largest")
        signer, ledger_id = self.signer, self._state.ledger_id
        proof = prove_consistency(
            self.backend.read(0, new), old, new,
            lambda size, root, head: anchors.sign_checkpoint(ledger_id, size, root, head, signer))
        proof.check(self.verifier)
        return proof

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


def _check_extends(seq: int, last_hash: str | None, stored: StoredEvent,
                   body: dict[str, Any]) -> None:
    """``stored`` is the event after ``seq`` (whose hash is ``last_hash``): its seq, stored
    and in its body, and its link. A row copied past the head (a replay of a validly
    signed event, after a gap or at the head) fails here."""
    if stored.seq != seq + 1 or body.get("seq") != stored.seq or body.get("prev") != last_hash:
        raise IntegrityError(f"event {stored.seq}: it does not extend event {seq} (sequence "
                             "number or link to its hash): a row was added or moved in the "
                             "database", seq=stored.seq, hint="run `ouro verify`")


def _check_signed(state: KernelState, stored: StoredEvent) -> None:
    """``stored`` carries the runtime key's signature (``state`` holds that key)."""
    if not verify_signature(str(state.runtime_key["public"]), stored.sig, stored.body):
        raise IntegrityError(f"event {stored.seq}: the runtime key's signature does not "
                             "verify: a row was forged in the database", seq=stored.seq,
                             hint="run `ouro verify`; restore the ledger from a backup")


def _shrank(seen: int, next_seq: int) -> IntegrityError:
    return IntegrityError(f"the ledger shrank: this process has seen event {seen}, the "
                          f"ledger now ends at {next_seq - 1}", seq=next_seq)


def _open_backend(ws: Workspace, durable: bool) -> LedgerBackend:
    try:
        return open_ledger(ws.home, ws.ledger_url, durable=durable)
    except LedgerUnavailable as e:
        raise ledger_error(e) from e


def ledger_error(e: LedgerUnavailable) -> OuroError:
    """A backend's failure as the kernel's typed error (exit 2 usage, 1 otherwise)."""
    if e.kind == "usage":
        return UsageError(e.message, e.hint)
    if e.kind == "integrity":
        return IntegrityError(e.message, hint=e.hint)
    return OuroError(e.message, e.hint)


def ledger_public(url: str) -> str:
    """A ledger URL as a workspace stores it: without its password."""
    from ouroboros.storage.postgres.url import parse

    try:
        return parse(url).public
    except LedgerUnavailable as e:
        raise ledger_error(e) from e


def _remove_quietly(path: Path, created: bool) -> None:
    """Undo what a failed ``init`` left: the checkpoint lock file, and the folder if the
    init made it."""
    import contextlib

    for name in ("ledger.checkpoint.lock",):
        with contextlib.suppress(OSError):
            (path / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            path.rmdir()


def _policy_key(policy: dict[str, Any], key: str, keyring: Keyring) -> str:
    """The key id ``key`` names: a keyring key, a key name in the policy, or an id prefix."""
    by_name = {n: kid for kid, n in key_names(policy).items() if kid in policy["keys"]}
    if key in by_name:
        return str(by_name[key])
    if key in keyring.names():
        return keyring.public(key)[0]
    ids = [k for k in policy["keys"] if len(key) >= 8 and k.startswith(key)]
    if len(ids) == 1:
        return str(ids[0])
    raise NotFound(f"no key {key!r} in the trust policy", "see `ouro trust show`")


def _approvers(state: KernelState, approval: Item | None) -> frozenset[str]:
    """The key ids that approved a pending patch: those recorded, and the completing one."""
    if approval is None:
        return frozenset()
    entry = state.pending.get(str(approval[1].get("patch_hash", "")), {})
    return frozenset({*entry.get("approvals", {}).values(), str(approval[1]["approver"])})


def _interrupted_init(ws: Workspace) -> str:
    """The way out of a workspace whose `ouro init` was killed before it pinned the genesis
    (its ledger holds no event, or the genesis alone)."""
    if "genesis" in ws.config:
        return "restore the ledger from a backup"
    return (f"if `ouro init` was interrupted, the workspace holds nothing yet: remove "
            f"{ws.home} and run `ouro init` again; otherwise restore the ledger from a backup")
