"""``verify``: everything a workspace's bytes must satisfy, in one streaming pass.

1. The chain: every body, signature, link, sequence number and in-ledger checkpoint
   (``ledger.iter_verified``, the per-event work on every core).
2. The history: a replay from genesis that re-applies every patch and checks its recorded
   result, refusing any history no gate would allow (a patch applied twice without a
   rollback in between, an approval or a breaker resume whose signature fails).
3. The snapshots: each must carry the runtime key's signature and equal, byte for byte,
   the state the replay reaches at its sequence number.
4. The anchors: every signed checkpoint it knows (beside the ledger, in each witness) must
   be covered by the ledger: its head event present and unchanged, and its Merkle root
   consistent with the ledger's current root through an RFC 6962 consistency proof.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from ouroboros.kernel.anchors import (
    KnownCheckpoint,
    Witness,
    read_checkpoints,
    verifier_for,
    witness_path,
)
from ouroboros.kernel.canonical import hash_bytes
from ouroboros.kernel.errors import IntegrityError
from ouroboros.kernel.keys import verify_signature
from ouroboros.kernel.ledger import VerifyReport, iter_verified
from ouroboros.kernel.merkle import (
    MerkleAccumulator,
    ProofError,
    RangeHasher,
    consistency_ranges,
    verify_consistency,
)
from ouroboros.kernel.patch_index import ReplayIndex, stored_digest
from ouroboros.kernel.state import FoldError, KernelState, fold_event
from ouroboros.storage.ledger import LedgerBackend, Snapshot

SNAPSHOT_CONTEXT = b"ouroboros-snapshot\n"


def snapshot_statement(data: bytes) -> bytes:
    """What the runtime key signs for a snapshot (domain-separated from events)."""
    return SNAPSHOT_CONTEXT + data


def snapshot_problem(snap: Snapshot, public_hex: str) -> str | None:
    """Why a stored snapshot cannot be trusted, or ``None``."""
    if not verify_signature(public_hex, snap.sig, snapshot_statement(snap.data)):
        return f"snapshot at seq {snap.seq}: the runtime key's signature does not verify"
    return None


@dataclass
class _Anchor:
    known: KnownCheckpoint
    hasher: RangeHasher | None


def verify_ledger(backend: LedgerBackend, *, pinned_genesis: str | None,
                  witnesses: Sequence[str] = (), workers: int | None = None) -> VerifyReport:
    """Run every check above against the local checkpoint and ``witnesses`` (directories);
    raise ``IntegrityError`` naming the first thing wrong. Every witness the replayed
    ledger registered must be among ``witnesses``."""
    first = next(iter(backend.read(0, 1)), None)
    genesis = orjson.loads(first.body) if first is not None else None
    # Checkpoints are read before the ledger is counted: the ledger only grows, so a
    # checkpoint written meanwhile can never look ahead of it.
    anchors: list[_Anchor] = []
    listed = list(dict.fromkeys(str(witness_path(w)) for w in witnesses))
    if genesis is not None and genesis.get("kind") == "Genesis":
        assert first is not None
        ledger_id = hash_bytes(first.body)
        verifier = verifier_for(ledger_id, str(genesis["payload"]["runtime_key"]["public"]))
        known = read_checkpoints(backend, [Witness(Path(w), ledger_id) for w in listed],
                                 verifier)
        anchors = [_Anchor(k, None) for k in known]
    count = backend.count()
    for a in anchors:
        cp = a.known.checkpoint
        if cp.size > count:
            raise IntegrityError(
                f"{a.known.source} commits to {cp.size} events but the ledger holds {count}: "
                f"event(s) {count}..{cp.size - 1} are missing", seq=count)
        if 0 < cp.size < count:
            a.hasher = RangeHasher(consistency_ranges(cp.size, count))
    snapshot_seqs = set(backend.snapshot_seqs())
    public_hex = str(genesis["payload"]["runtime_key"]["public"]) if genesis else ""
    state = KernelState()
    merkle = MerkleAccumulator()
    stats: dict[str, int] = {}
    head, events, snapshots = "", 0, 0
    for ev in iter_verified(backend.read(0, count), pinned_genesis=pinned_genesis,
                            workers=workers, stats=stats, merkle=merkle):
        try:  # (a capability event's payload is not the kernel's: the worker left it out)
            fold_event(state, ev.seq, ev.kind, ev.payload or {}, "", ev.body,
                       check_results=True, track_merkle=False, body_hash=ev.hash)
        except FoldError as e:
            raise IntegrityError(f"replay: {e}", seq=e.seq) from e
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"replay: event {ev.seq}: {type(e).__name__}: {e}",
                                 seq=ev.seq) from e
        for a in anchors:
            if a.hasher is not None:
                a.hasher.add(ev.seq, ev.leaf)
            if ev.seq == a.known.checkpoint.size - 1 and ev.hash != a.known.checkpoint.head:
                raise IntegrityError(f"{a.known.source} commits to a different event "
                                     f"{ev.seq} than the ledger holds: the ledger was "
                                     "rewritten from there", seq=ev.seq)
        if ev.seq in snapshot_seqs:
            _check_snapshot(backend, ev.seq, state, merkle, public_hex)
            snapshots += 1
        head, events = ev.hash, ev.seq + 1
    expected = state.index
    assert isinstance(expected, ReplayIndex)
    if stored_digest(backend, events) != (expected.rows, expected.digest):
        raise IntegrityError("the patch index differs from what the ledger states (rows were "
                             "added, removed or changed): gates may have let a replay "
                             "through", hint="rebuild it from the ledger")
    unchecked = [w for w in state.witnesses if w not in listed]
    if unchecked:
        raise IntegrityError(f"witness {unchecked[0]} is registered in the ledger but was not "
                             "checked: the state the runtime opened with omits it")
    root = merkle.root()
    for a in anchors:
        cp = a.known.checkpoint
        proof = a.hasher.hashes() if a.hasher is not None else []
        try:
            verify_consistency(cp.size, events, cp.root, root, proof)
        except ProofError as e:
            raise IntegrityError(f"{a.known.source} (tree size {cp.size}) is not consistent "
                                 f"with the ledger: {e}", seq=cp.size - 1) from e
    return VerifyReport(events=events, checkpoints=stats.get("checkpoints", 0), head=head,
                        anchors=tuple((a.known.source, a.known.checkpoint.size)
                                      for a in anchors),
                        snapshots=snapshots)


def _check_snapshot(backend: LedgerBackend, seq: int, state: KernelState,
                    merkle: MerkleAccumulator, public_hex: str) -> None:
    snap = backend.snapshot(seq)
    if snap is None:
        return
    problem = snapshot_problem(snap, public_hex)
    if problem is not None:
        raise IntegrityError(problem, seq=seq)
    legacy = "types" not in orjson.loads(snap.data)  # written before targets kept their type
    if dataclasses.replace(state, merkle=merkle).to_bytes(legacy) != snap.data:
        raise IntegrityError(f"snapshot at seq {seq} differs from the state a replay reaches "
                             "there (a signed snapshot that disagrees: the runtime key "
                             "signed something wrong, or was misused)", seq=seq)
