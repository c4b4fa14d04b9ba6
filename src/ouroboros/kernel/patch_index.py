"""The patch index: which patch hashes were applied, undone by a rollback, or charged to
a breaker. It grows with history, so it lives in the ledger backend (one row per fact,
written in the same transaction as the event that states it), not in the snapshots,
which stay the size of the live state.

- ``StoredIndex`` answers the gates from the backend.
- ``ReplayIndex`` is what a replay from genesis builds for itself: the set of live
  patch hashes (8-byte prefixes: about 60 MB at a million patches), enough to refuse a
  patch applied twice without a rollback in between, plus a multiset digest of the rows
  the ledger implies, which ``verify`` compares with the stored index (rows added,
  removed or changed are caught without holding the index in memory).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Protocol

import orjson

from ouroboros.storage.ledger import (
    APPLIED,
    CHARGED,
    UNDONE,
    IndexRow,
    LedgerBackend,
    PatchRecord,
)

_MOD = 1 << 256


def raw(patch_hash: str) -> bytes:
    """``sha256:<hex>`` as its 32 bytes (the index's key)."""
    return bytes.fromhex(patch_hash[7:])


def index_rows(seq: int, kind: str, payload: dict[str, Any]) -> list[IndexRow]:
    """The index rows one event states (the same function for the writer and the replay)."""
    if kind == "PatchApplied":
        rows = [(raw(payload["patch_hash"]), APPLIED, seq)]
        if payload.get("rollback_of"):
            rows.append((raw(str(payload["rollback_of"])), UNDONE, seq))
        return rows
    if kind == "PatchRejected" and payload.get("charged"):
        return [(raw(payload["patch_hash"]), CHARGED, seq)]
    return []


def row_digest(row: IndexRow) -> int:
    h, kind, seq = row
    return int.from_bytes(hashlib.sha256(h + bytes([kind]) + seq.to_bytes(8, "big")).digest(),
                          "big")


class PatchIndex(Protocol):
    def record(self, patch_hash: str) -> PatchRecord | None: ...

    def find_applied(self, prefix: str) -> list[str]: ...

    def scan(self, patch_hash: str, created: str) -> PatchRecord | None:
        """Ask the ledger itself (not the index) whether and where the patch was applied."""
        ...

    def fold(self, seq: int, kind: str, payload: dict[str, Any]) -> str | None:
        """Take one event into account; return why it is impossible, if it is."""
        ...


class StoredIndex:
    """The live runtime's view: the backend's rows. The writer stores them with the events,
    so folding an event needs nothing here."""

    def __init__(self, backend: LedgerBackend) -> None:
        self.backend = backend

    def record(self, patch_hash: str) -> PatchRecord | None:
        return self.backend.patch_record(raw(patch_hash))

    def find_applied(self, prefix: str) -> list[str]:
        hexdigits = prefix.removeprefix("sha256:")
        return ["sha256:" + h.hex() for h in self.backend.find_patches(hexdigits)]

    def fold(self, seq: int, kind: str, payload: dict[str, Any]) -> str | None:
        return None

    def scan(self, patch_hash: str, created: str) -> PatchRecord | None:
        """Read the ledger from a day before ``created`` (clocks differ; a patch cannot be
        applied before it was made) for its ``PatchApplied`` and any rollback of it.
        Linear in the events read: it runs only when a patch older than its target's last
        change finds nothing in the index (a replayed envelope, or a tampered index)."""
        from ouroboros.kernel.clock import iso, parse_iso

        since = iso(parse_iso(created) - timedelta(days=1))
        lo, hi = 0, self.backend.count()
        while lo < hi:  # the first event at or after ``since`` (event times only grow)
            mid = (lo + hi) // 2
            event = next(iter(self.backend.read(mid, mid + 1)))
            if orjson.loads(event.body)["time"] < since:
                lo = mid + 1
            else:
                hi = mid
        needle = patch_hash.encode()
        applied = undone = None
        for event in self.backend.read(lo):
            if needle not in event.body:
                continue
            d = orjson.loads(event.body)
            if d["kind"] != "PatchApplied":
                continue
            if d["payload"]["patch_hash"] == patch_hash:
                applied, undone = event.seq, None
            elif d["payload"].get("rollback_of") == patch_hash:
                undone = event.seq
        return None if applied is None else PatchRecord(applied, undone, None)


class ReplayIndex:
    """Built by a replay: live patch prefixes and the digest of every implied row."""

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.digest = 0
        self.rows = 0

    def record(self, patch_hash: str) -> PatchRecord | None:
        raise TypeError("a replay's index answers no gate queries")

    def find_applied(self, prefix: str) -> list[str]:
        raise TypeError("a replay's index answers no gate queries")

    def scan(self, patch_hash: str, created: str) -> PatchRecord | None:
        raise TypeError("a replay's index answers no gate queries")

    def fold(self, seq: int, kind: str, payload: dict[str, Any]) -> str | None:
        rows = index_rows(seq, kind, payload)
        for row in rows:
            self.digest = (self.digest + row_digest(row)) % _MOD
        self.rows += len(rows)
        if kind != "PatchApplied":
            return None
        key = int.from_bytes(rows[0][0][:8], "big")
        if key in self.live:
            return (f"patch {payload['patch_hash']} is applied a second time without a "
                    "rollback in between")
        self.live.add(key)
        if len(rows) > 1:  # a rollback: what it undid may be applied again (by a rollback)
            self.live.discard(int.from_bytes(rows[1][0][:8], "big"))
        return None


def stored_digest(backend: LedgerBackend, below: int) -> tuple[int, int]:
    """(row count, multiset digest) of the stored index rows for events before ``below``
    (later rows belong to appends made since the caller counted), streamed."""
    digest, count = 0, 0
    for row in backend.patch_index():
        if row[2] < below:
            digest = (digest + row_digest(row)) % _MOD
            count += 1
    return count, digest
