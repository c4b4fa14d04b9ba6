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


class RetryAppend(Exception):
    """Raised by an append builder when the head moved since it evaluated its gates."""


EventBuilder = Callable[[Head], Sequence[StoredEvent]]


class LedgerBackend(Protocol):
    def append(self, build: EventBuilder) -> list[StoredEvent]:
        """Call ``build`` with the current head inside an exclusive transaction and store
        what it returns, all or nothing."""
        ...

    def head(self) -> Head: ...

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        """Events with ``start <= seq < stop`` in order."""
        ...

    def count(self) -> int: ...

    def put_snapshot(self, seq: int, data: bytes) -> None: ...

    def latest_snapshot(self, at_most: int | None = None) -> tuple[int, bytes] | None:
        """The newest snapshot taken after event ``seq`` (``seq <= at_most``)."""
        ...

    def close(self) -> None: ...
