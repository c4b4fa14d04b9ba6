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


@dataclass(frozen=True, slots=True)
class Head:
    """What the next event must extend, as seen inside the append's critical section."""

    next_seq: int
    #: ``since(start)``: the stored events from ``start`` on, read inside that same critical
    #: section, so a builder that finds the head moved can catch up without letting go.
    since: Callable[[int], Iterator[StoredEvent]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Folded kernel state after event ``seq``, and the runtime key's signature over it."""

    seq: int
    data: bytes
    sig: bytes


class RetryAppend(Exception):
    """Raised by an append builder when the head moved since it evaluated its gates."""


EventBuilder = Callable[[Head], Sequence[StoredEvent]]
#: Called once the events are committed, still inside the writer's critical section, so
#: what it publishes (the signed checkpoint) follows the ledger in the same order.
AfterCommit = Callable[[Sequence[StoredEvent]], None]


class LedgerBackend(Protocol):
    """Everything the kernel stores: events, the latest signed checkpoint, snapshots.

    A new backend (PostgreSQL) implements exactly these methods; the kernel signs and
    checks everything it stores, so a backend needs no cryptography of its own.
    """

    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None
               ) -> list[StoredEvent]:
        """Call ``build`` with the current head inside an exclusive transaction and store
        what it returns, all or nothing; then call ``after_commit`` with the stored events
        before releasing the writers' lock."""
        ...

    def head(self) -> Head: ...

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        """Events with ``start <= seq < stop`` in order."""
        ...

    def count(self) -> int: ...

    def put_checkpoint(self, note: bytes) -> None:
        """Atomically replace the latest signed checkpoint (a C2SP signed note). Called by
        ``after_commit``, inside the writers' critical section: no lock of its own."""
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

    def close(self) -> None: ...
