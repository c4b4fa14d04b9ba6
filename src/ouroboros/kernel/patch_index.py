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
from array import array
from typing import Any, Protocol

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


class CompactSet:
    """A set of 64-bit keys in one ``array('Q')`` (open addressing, linear probing): 8 bytes
    a slot at most half full, against about 64 for a Python ``set`` of ints, which is what
    keeps a replay of a million patches under 200 MB."""

    _EMPTY, _GONE = 0, 1

    def __init__(self, capacity: int = 1024) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._used = 0  # live keys and tombstones: what the probes walk past

    @staticmethod
    def _key(key: int) -> int:
        return key | 2  # never 0 (empty) or 1 (a removed key)

    def _find(self, key: int) -> int:
        """The slot holding ``key``, or the first free slot of its probe sequence."""
        slots, mask = self._slots, self._mask
        i, first_gone = key & mask, -1
        while True:
            v = slots[i]
            if v == key:
                return i
            if v == self._EMPTY:
                return first_gone if first_gone >= 0 else i
            if v == self._GONE and first_gone < 0:
                first_gone = i
            i = (i + 1) & mask

    def __contains__(self, key: int) -> bool:
        key = self._key(key)
        return self._slots[self._find(key)] == key

    def add(self, key: int) -> None:
        key = self._key(key)
        i = self._find(key)
        if self._slots[i] == key:
            return
        if self._slots[i] == self._EMPTY:
            self._used += 1
        self._slots[i] = key
        if 2 * self._used > len(self._slots):
            self._grow()

    def discard(self, key: int) -> None:
        key = self._key(key)
        i = self._find(key)
        if self._slots[i] == key:
            self._slots[i] = self._GONE

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask, self._used = 2 * len(old) - 1, 0
        for v in old:
            if v > self._GONE:
                self.add(v)  # keys are stored marked already: marking again is a no-op


class ReplayIndex:
    """Built by a replay: live patch prefixes and the digest of every implied row."""

    def __init__(self) -> None:
        self.live = CompactSet()
        self.digest = 0
        self.rows = 0

    def record(self, patch_hash: str) -> PatchRecord | None:
        raise TypeError("a replay's index answers no gate queries")

    def find_applied(self, prefix: str) -> list[str]:
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
