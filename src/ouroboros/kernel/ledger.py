"""The ledger: signed, hash-chained events over a storage backend, and their verification.

Each event's body is the RFC 8785 bytes of ``{seq, prev, kind, time, key_id, payload}``;
the runtime key signs exactly those bytes and the backend stores exactly those bytes.
Verification re-reads the stored bytes and never re-serialises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from ouroboros.kernel.canonical import canonical_bytes, hash_bytes
from ouroboros.kernel.errors import IntegrityError
from ouroboros.kernel.keys import Signer, key_id_of, verify_signature
from ouroboros.kernel.merkle import MerkleAccumulator
from ouroboros.kernel.state import GENESIS_PREV
from ouroboros.storage.ledger import StoredEvent


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
        d = json.loads(stored.body)
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


def _verify_chunk(args: tuple[str, list[tuple[int, bytes, bytes]]]) -> int | None:
    public_hex, rows = args
    for seq, body, sig in rows:
        if not verify_signature(public_hex, sig, body):
            return seq
    return None


def _first_bad_signature(public_hex: str, rows: list[tuple[int, bytes, bytes]],
                         workers: int) -> int | None:
    if workers <= 1 or len(rows) < 4000:
        return _verify_chunk((public_hex, rows))
    size = max(1000, len(rows) // (workers * 4))
    chunks = [(public_hex, rows[i:i + size]) for i in range(0, len(rows), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for bad in pool.map(_verify_chunk, chunks):
            if bad is not None:
                return bad
    return None


def verify_events(stored: Iterable[StoredEvent], *, pinned_genesis: str | None = None,
                  workers: int | None = None) -> VerifyReport:
    """Check every link, body, signature and checkpoint; raise ``IntegrityError`` naming the
    first bad event. Links and checkpoints are checked in order in this process; the
    Ed25519 signatures, the costly part, on every core."""
    rows: list[tuple[int, bytes, bytes]] = []
    prev = GENESIS_PREV
    public_hex = ""
    runtime_key_id = ""
    merkle = MerkleAccumulator()
    checkpoints = 0
    first_bad: tuple[int, str] | None = None
    expected = 0
    for ev in stored:
        where = f"event {ev.seq}"
        try:
            if ev.seq != expected:
                raise ValueError(f"sequence gap: expected seq {expected}, found {ev.seq}")
            d = json.loads(ev.body.decode())
            if not isinstance(d, dict) or set(d) != {"seq", "prev", "kind", "time", "key_id",
                                                     "payload"}:
                raise ValueError("body is not a ledger event")
            if d["seq"] != ev.seq:
                raise ValueError(f"body says seq {d['seq']}, stored at seq {ev.seq}")
            if d["prev"] != prev:
                raise ValueError("broken link: prev does not match the previous event's hash")
            if ev.seq == 0:
                if d["kind"] != "Genesis":
                    raise ValueError("the first event is not Genesis")
                public_hex = d["payload"]["runtime_key"]["public"]
                runtime_key_id = key_id_of(bytes.fromhex(public_hex))
                if runtime_key_id != d["payload"]["runtime_key"]["id"]:
                    raise ValueError("genesis runtime key id does not match its public key")
                if pinned_genesis is not None and hash_bytes(ev.body) != pinned_genesis:
                    raise ValueError("genesis differs from the one pinned in the workspace")
            if d["key_id"] != runtime_key_id:
                raise ValueError("signed by a key other than the runtime key")
            if d["kind"] == "Checkpoint":
                cp = d["payload"]
                if cp["tree_size"] != merkle.size or cp["root"] != merkle.root().hex():
                    raise ValueError("checkpoint Merkle root does not match the events before it")
                checkpoints += 1
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            first_bad = (ev.seq, f"{where}: {e}")
            break
        rows.append((ev.seq, ev.body, ev.sig))
        merkle.append(ev.body)
        prev = hash_bytes(ev.body)
        expected += 1
    bad_sig = _first_bad_signature(public_hex, rows, workers or min(2, os.cpu_count() or 1))
    if bad_sig is not None and (first_bad is None or bad_sig < first_bad[0]):
        raise IntegrityError(f"event {bad_sig}: signature does not verify", seq=bad_sig)
    if first_bad is not None:
        raise IntegrityError(first_bad[1], seq=first_bad[0])
    if expected == 0:
        raise IntegrityError("the ledger is empty (no genesis)", seq=0)
    return VerifyReport(events=expected, checkpoints=checkpoints, head=prev)


def decode_all(stored: Iterable[StoredEvent]) -> Iterator[Event]:
    for s in stored:
        yield Event.decode(s)
