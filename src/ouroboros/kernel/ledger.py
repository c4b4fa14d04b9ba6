"""The ledger: signed, hash-chained events over a storage backend, and their verification.

Each event's body is the RFC 8785 bytes of ``{seq, prev, kind, time, key_id, payload}``;
the runtime key signs exactly those bytes and the backend stores exactly those bytes.
Verification re-reads the stored bytes and never re-serialises.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ouroboros.kernel.canonical import canonical_bytes, hash_bytes
from ouroboros.kernel.errors import IntegrityError
from ouroboros.kernel.keys import Signer, key_id_of, verify_signature
from ouroboros.kernel.merkle import MerkleAccumulator, leaf_hash
from ouroboros.kernel.state import GENESIS_PREV, KERNEL_KINDS
from ouroboros.storage.ledger import StoredEvent

if TYPE_CHECKING:
    from concurrent.futures import Future


@dataclass(frozen=True)
class Event:
    seq: int
    prev: str
    kind: str
    time: str
    key_id: str
    payload: dict[str, Any]
    hash: str

    @classmethod
    def decode(cls, stored: StoredEvent) -> Event:
        d = orjson.loads(stored.body)
        return cls(d["seq"], d["prev"], d["kind"], d["time"], d["key_id"], d["payload"],
                   hash_bytes(stored.body))

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "prev": self.prev, "kind": self.kind, "time": self.time,
                "key_id": self.key_id, "hash": self.hash, "payload": self.payload}


def make_event(seq: int, prev: str, kind: str, payload: dict[str, Any], time: str,
               signer: Signer) -> StoredEvent:
    body = canonical_bytes({"seq": seq, "prev": prev, "kind": kind, "time": time,
                            "key_id": signer.key_id, "payload": payload})
    return StoredEvent(seq, body, signer.sign(body))


@dataclass(frozen=True)
class VerifyReport:
    events: int
    checkpoints: int
    head: str
    #: The signed checkpoints the ledger was compared with: (where, tree size).
    anchors: tuple[tuple[str, int], ...] = ()
    snapshots: int = 0


_FIELDS = {"seq", "prev", "kind", "time", "key_id", "payload"}
_CHUNK = 2000
# (seq, error, prev, hash, leaf hash, checkpoint (tree_size, root) or None, kind, payload
# of a kernel event or None: what a replay needs, so the parent never parses a body again)
Checked = tuple[int, str | None, str, str, bytes, tuple[int, str] | None, str,
                dict[str, Any] | None]


def _check_rows(args: tuple[str, str, list[tuple[int, bytes, bytes]]]) -> list[Checked]:
    """Everything about an event that does not depend on its neighbours: its body parses,
    names its own seq and the runtime key, and carries a valid signature. Runs in a worker."""
    public_hex, key_id, rows = args
    out: list[Checked] = []
    for seq, body, sig in rows:
        digest = hash_bytes(body)
        leaf = leaf_hash(body)
        try:
            d = orjson.loads(body)  # stricter than json: lone surrogates, NaN are refused
            if not isinstance(d, dict) or set(d) != _FIELDS:
                raise ValueError("body is not a ledger event")
            if d["seq"] != seq:
                raise ValueError(f"body says seq {d['seq']}, stored at seq {seq}")
            if d["key_id"] != key_id:
                raise ValueError("signed by a key other than the runtime key")
            if not verify_signature(public_hex, sig, body):
                raise ValueError("signature does not verify")
            cp = None
            kind = str(d["kind"])
            if kind == "Checkpoint":
                cp = (int(d["payload"]["tree_size"]), str(d["payload"]["root"]))
            payload = d["payload"] if kind in KERNEL_KINDS else None
            out.append((seq, None, str(d["prev"]), digest, leaf, cp, kind, payload))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            out.append((seq, str(e), "", digest, leaf, None, "", None))
    return out


def _genesis_key(first: StoredEvent | None, pinned: str | None) -> tuple[str, str]:
    if first is None:
        raise IntegrityError("the ledger is empty (no genesis)", seq=0)
    try:
        if first.seq != 0:
            raise ValueError(f"sequence gap: expected seq 0, found {first.seq}")
        d = json.loads(first.body.decode())
        if d.get("kind") != "Genesis":
            raise ValueError("the first event is not Genesis")
        public_hex = str(d["payload"]["runtime_key"]["public"])
        key_id = key_id_of(bytes.fromhex(public_hex))
        if key_id != d["payload"]["runtime_key"]["id"]:
            raise ValueError("genesis runtime key id does not match its public key")
        if pinned is not None and hash_bytes(first.body) != pinned:
            raise ValueError("genesis differs from the one pinned in the workspace")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise IntegrityError(f"event {first.seq}: {e}", seq=first.seq) from e
    return public_hex, key_id


def _chunks(stored: Iterator[StoredEvent]) -> Iterator[list[tuple[int, bytes, bytes]]]:
    chunk: list[tuple[int, bytes, bytes]] = []
    for ev in stored:
        chunk.append((ev.seq, ev.body, ev.sig))
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _checked_in_order(public_hex: str, key_id: str, stored: Iterator[StoredEvent],
                      workers: int) -> Iterator[tuple[Checked, bytes]]:
    """Per-event checks, on ``workers`` processes, yielded in ledger order with each body
    (kept here, never sent back) and a bounded number of chunks in flight (memory stays
    flat however long the ledger is)."""
    chunks = _chunks(stored)

    def with_bodies(chunk: list[tuple[int, bytes, bytes]], checked: list[Checked]
                    ) -> Iterator[tuple[Checked, bytes]]:
        return zip(checked, (body for _, body, _ in chunk), strict=True)

    if workers <= 1:
        for chunk in chunks:
            yield from with_bodies(chunk, _check_rows((public_hex, key_id, chunk)))
        return
    first = next(chunks, None)
    if first is None:
        return
    if len(first) < _CHUNK:  # a small ledger: not worth starting processes
        yield from with_bodies(first, _check_rows((public_hex, key_id, first)))
        return
    from concurrent.futures import ProcessPoolExecutor  # only a parallel verify needs it

    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[tuple[int, bytes, bytes]], Future[list[Checked]]]] = deque(
            [(first, pool.submit(_check_rows, (public_hex, key_id, first)))])
        for chunk in chunks:
            pending.append((chunk, pool.submit(_check_rows, (public_hex, key_id, chunk))))
            if len(pending) > workers * 3:
                done, future = pending.popleft()
                yield from with_bodies(done, future.result())
        while pending:
            done, future = pending.popleft()
            yield from with_bodies(done, future.result())


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """An event whose body, signature, sequence number and link have been checked, with
    its kind and (for kernel kinds) its payload as the worker parsed them."""

    seq: int
    body: bytes
    hash: str
    leaf: bytes
    kind: str
    payload: dict[str, Any] | None


def iter_verified(stored: Iterable[StoredEvent], *, pinned_genesis: str | None = None,
                  workers: int | None = None, stats: dict[str, int] | None = None,
                  merkle: MerkleAccumulator | None = None) -> Iterator[VerifiedEvent]:
    """Yield every event once it is checked (body, signature, link, sequence number, the
    in-ledger checkpoints); raise ``IntegrityError`` naming the first bad one. The
    per-event work (parsing, hashing, Ed25519) runs on every core; this process only
    follows the chain and the Merkle tree (``merkle``, if given, is that tree: the
    caller reads its root). ``stats`` receives the checkpoint count."""
    it = iter(stored)
    first = next(it, None)
    public_hex, key_id = _genesis_key(first, pinned_genesis)
    assert first is not None
    merkle = merkle if merkle is not None else MerkleAccumulator()
    prev, expected, checkpoints = GENESIS_PREV, 0, 0
    workers = workers or min(2, os.cpu_count() or 1)
    for (seq, error, ev_prev, digest, leaf, cp, kind, payload), body in _checked_in_order(
            public_hex, key_id, itertools.chain([first], it), workers):
        if seq != expected:
            raise IntegrityError(f"event {seq}: sequence gap: expected seq {expected}", seq=seq)
        if error is not None:
            raise IntegrityError(f"event {seq}: {error}", seq=seq)
        if ev_prev != prev:
            raise IntegrityError(f"event {seq}: broken link: prev does not match the previous "
                                 "event's hash", seq=seq)
        if cp is not None:
            if cp != (merkle.size, merkle.root().hex()):
                raise IntegrityError(f"event {seq}: checkpoint Merkle root does not match the "
                                     "events before it", seq=seq)
            checkpoints += 1
            if stats is not None:
                stats["checkpoints"] = checkpoints
        merkle.append_leaf(leaf)
        prev, expected = digest, expected + 1
        yield VerifiedEvent(seq, body, digest, leaf, kind, payload)


def verify_events(stored: Iterable[StoredEvent], *, pinned_genesis: str | None = None,
                  workers: int | None = None) -> VerifyReport:
    """The chain alone: every body, signature, link, sequence number and checkpoint."""
    stats: dict[str, int] = {}
    events, head = 0, GENESIS_PREV
    for ev in iter_verified(stored, pinned_genesis=pinned_genesis, workers=workers,
                            stats=stats):
        events, head = ev.seq + 1, ev.hash
    return VerifyReport(events=events, checkpoints=stats.get("checkpoints", 0), head=head)
