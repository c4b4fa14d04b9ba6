"""The ledger backend interface.

A backend stores opaque signed event bodies in sequence and guarantees one thing the
kernel cannot: appends are atomic and serialised, so two writers never fork the chain.
The kernel builds (and signs) the events inside the backend's critical section, given the
head it must extend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One ledger row: the exact canonical bytes that were signed, and the signature."""

    seq: int
    body: bytes
    sig: bytes


#: One entry of the patch index: (patch hash as 32 raw bytes, kind, seq of the event).
IndexRow = tuple[bytes, int, int]
APPLIED, UNDONE, CHARGED = 1, 2, 3


def _no_index(rows: Sequence[IndexRow]) -> None:
    if rows:
        raise RuntimeError("this head cannot record patch-index rows")


@dataclass(frozen=True, slots=True)
class Head:
    """What the next event must extend, as seen inside the append's critical section."""

    next_seq: int
    #: ``since(start)``: the stored events from ``start`` on, read inside that same critical
    #: section, so a builder that finds the head moved can catch up without letting go.
    since: Callable[[int], Iterator[StoredEvent]]
    #: ``index(rows)``: patch-index rows for the events being built, stored in the same
    #: transaction (all or nothing with the events).
    index: Callable[[Sequence[IndexRow]], None] = _no_index


@dataclass(frozen=True, slots=True)
class PatchRecord:
    """What the patch index knows of one patch hash: the seq of its latest
    ``PatchApplied``, of the rollback that undid it since (if any), and of the rejection
    that charged its signers (if any)."""

    applied: int | None = None
    undone: int | None = None
    charged: int | None = None


def record_of(latest: dict[int, int]) -> PatchRecord:
    """A patch's record from its index rows: the highest seq of each row kind."""
    applied, undone = latest.get(APPLIED), latest.get(UNDONE)
    if undone is not None and (applied is None or undone < applied):
        undone = None  # undone, then applied again by a rollback: live
    return PatchRecord(applied, undone, latest.get(CHARGED))


def hash_range(prefix_hex: str) -> tuple[bytes, bytes]:
    """The lowest and highest 32-byte hashes that start with ``prefix_hex``."""
    return (bytes.fromhex((prefix_hex + "0" * 64)[:64]),
            bytes.fromhex((prefix_hex + "f" * 64)[:64]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Folded kernel state after event ``seq``, and the runtime key's signature over it."""

    seq: int
    data: bytes
    sig: bytes


class LedgerUnavailable(Exception):
    """The backend cannot serve the ledger: a bad URL (``kind="usage"``), a server that is
    down or refuses the login (``"failure"``), or a ledger that is missing or damaged in
    the database (``"integrity"``). Storage names the problem; the interfaces map ``kind``
    to an exit code (storage does not import the kernel's errors)."""

    def __init__(self, message: str, hint: str = "", *, kind: str = "failure") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.kind = kind


class RetryAppend(Exception):
    """Raised by an append builder when the head moved since it evaluated its gates."""


class IndexMoved(RetryAppend):
    """Raised by an append when a patch its caller took for unrecorded is in the index."""


EventBuilder = Callable[[Head], Sequence[StoredEvent]]
#: Called once the events are committed, with them. SQLite calls it still inside the
#: writers' lock; PostgreSQL just after it, so what it publishes (the signed checkpoint)
#: may arrive after a later writer's, and ``put_checkpoint`` there keeps the larger tree.
AfterCommit = Callable[[Sequence[StoredEvent]], None]


class LedgerBackend(Protocol):
    """Everything the kernel stores: events, the latest signed checkpoint, snapshots.

    A new backend (PostgreSQL) implements exactly these methods; the kernel signs and
    checks everything it stores, so a backend needs no cryptography of its own.
    """

    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None,
               unrecorded: Sequence[bytes] = ()) -> list[StoredEvent]:
        """Call ``build`` with the head and store what it returns, all or nothing, only if
        the head is still the one ``build`` saw; then call ``after_commit`` with the stored
        events. A backend may call ``build`` again on a head that moved (PostgreSQL: the
        server refused the first attempt), so ``build`` must rebuild from scratch each
        time; ``head.since`` then yields exactly the events up to that head.

        ``unrecorded``: patch hashes (raw) the caller decided on as unknown to the patch
        index without asking; if the index holds any row for one of them when the append
        would commit, nothing is stored and ``IndexMoved`` is raised (the caller asks and
        decides again). It saves the lookup's round trip on the common path."""
        ...

    def head(self) -> Head: ...

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        """Events with ``start <= seq < stop`` in order, fetched in bounded batches (memory
        stays flat however long the ledger is)."""
        ...

    def count(self) -> int: ...

    def patch_record(self, patch_hash: bytes) -> PatchRecord | None:
        """The patch index's entry for a patch (32-byte hash), or ``None``."""
        ...

    def find_patches(self, prefix_hex: str) -> list[bytes]:
        """Hashes of patches ever applied whose hex form starts with ``prefix_hex``."""
        ...

    def patch_index(self) -> Iterator[IndexRow]:
        """Every row of the patch index (for ``verify``), in any order."""
        ...

    def put_checkpoint(self, note: bytes) -> None:
        """Atomically replace the latest signed checkpoint (a C2SP signed note), called by
        ``after_commit``. SQLite: inside the writers' lock, no lock of its own. PostgreSQL:
        after it, under the checkpoint's file lock, and never over a larger tree."""
        ...

    def get_checkpoint(self) -> bytes | None:
        """The latest signed checkpoint, or ``None`` if none was ever written."""
        ...

    def put_snapshot(self, snapshot: Snapshot) -> None: ...

    def latest_snapshot(self, at_most: int | None = None) -> Snapshot | None:
        """The newest snapshot taken after event ``seq`` (``seq <= at_most``)."""
        ...

    def snapshot_seqs(self) -> list[int]:
        """The sequence numbers of every stored snapshot, ascending."""
        ...

    def snapshot(self, seq: int) -> Snapshot | None: ...

    def prune_snapshots(self, keep_last: int, keep_every: int) -> None:
        """Delete snapshots except the newest ``keep_last`` and the oldest of each run of
        ``keep_every`` events (so ``state --at`` stays cheap far back)."""
        ...

    def close(self) -> None: ...
