"""Anchors: the signed checkpoints that pin the ledger's head outside the database.

A hash chain proves that nothing *inside* it changed, but not that its newest events are
all there: drop the last rows and what is left is still a valid chain. So after every
append batch the runtime signs a C2SP checkpoint of the new head and the backend writes it
beside the ledger; registered *witness* directories get a copy. A reader then compares the
ledger with every checkpoint it knows: a checkpoint that commits to more events than the
ledger holds, or to a different event at its size, means the ledger lost or rewrote
events.

Comparing a checkpoint with the ledger needs one row: the checkpoint names the hash of its
last event, and the hash chain commits that event to everything before it. ``verify``
goes further and checks the Merkle root at each checkpoint's size through a consistency
proof to the ledger's current root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ouroboros.kernel.errors import IntegrityError, UsageError
from ouroboros.kernel.keys import Signer
from ouroboros.kernel.note import Checkpoint, NoteError, Verifier
from ouroboros.storage.files import (
    LockTimeout,
    read_note,
    read_small,
    rewrite_unless_newer,
    write_new,
)
from ouroboros.storage.ledger import LedgerBackend

ORIGIN_PREFIX = "ouroboros/ledger/"


def log_id(ledger_id: str) -> str:
    """The short name of a ledger: the first 32 hex digits of its genesis hash."""
    return ledger_id.removeprefix("sha256:")[:32]


def origin_of(ledger_id: str) -> str:
    return ORIGIN_PREFIX + log_id(ledger_id)


def verifier_for(ledger_id: str, runtime_public_hex: str) -> Verifier:
    return Verifier(origin_of(ledger_id), bytes.fromhex(runtime_public_hex))


@dataclass(frozen=True)
class Witness:
    """A directory that keeps a copy of each checkpoint (and the log's verifier key)."""

    root: Path
    ledger_id: str

    @property
    def checkpoint_path(self) -> Path:
        return self.root / f"{log_id(self.ledger_id)}.checkpoint"

    @property
    def vkey_path(self) -> Path:
        return self.root / f"{log_id(self.ledger_id)}.vkey"

    def enrol(self, verifier: Verifier) -> None:
        """Record the log's verifier key on first contact; refuse a different one later."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create witness directory {self.root}: {e}") from e
        if not self.root.is_dir():
            raise UsageError(f"witness path {self.root} is not a directory")
        try:
            raw = read_small(self.vkey_path, 1 << 12)
        except OSError as e:
            raise UsageError(f"witness {self.root}: {e}") from None
        if raw is None:
            try:
                write_new(str(self.vkey_path), (verifier.vkey() + "\n").encode())
            except OSError as e:
                raise UsageError(f"witness {self.root}: {e}") from None
            return
        known = raw.decode(errors="replace").strip()
        if known != verifier.vkey():
            raise IntegrityError(f"witness {self.root} knows this log under another key "
                                 f"({known[:60]}…): it was re-created or is being impersonated")

    def publish(self, note: bytes, durable: bool) -> None:
        # Writers may publish in any order once their commits are in (PostgreSQL): a
        # witness keeps the larger tree and never moves back.
        rewrite_unless_newer(str(self.checkpoint_path), note, durable=durable)

    def read(self) -> bytes | None:
        return read_note(str(self.checkpoint_path))


@dataclass(frozen=True)
class KnownCheckpoint:
    source: str
    checkpoint: Checkpoint
    note: bytes


def read_checkpoints(backend: LedgerBackend, witnesses: Sequence[Witness],
                     verifier: Verifier) -> list[KnownCheckpoint]:
    """Every checkpoint this ledger should agree with, each signature checked; a missing
    or forged one is an ``IntegrityError`` naming where it should have been."""
    out: list[KnownCheckpoint] = []
    sources: list[tuple[str, Callable[[], bytes | None]]] = [("the local checkpoint",
                                                              backend.get_checkpoint)]
    sources += [(f"witness {w.root}", w.read) for w in witnesses]
    for source, read in sources:
        out.append(_read_one(source, read, verifier))
    for w in witnesses:
        try:
            raw = read_small(w.vkey_path, 1 << 12)
        except OSError as e:
            raise IntegrityError(f"witness {w.root}: {e}") from None
        if raw is None:
            continue
        known = raw.decode(errors="replace").strip()
        if known != verifier.vkey():
            raise IntegrityError(f"witness {w.root} knows this log under another key: the "
                                 "ledger's runtime key changed (a replaced workspace?)")
    return out


def _read_one(source: str, read: Callable[[], bytes | None], verifier: Verifier
              ) -> KnownCheckpoint:
    for attempt in range(3):  # a witness copy read while it is rewritten: read it again
        try:
            note = read()
        except OSError as e:
            raise IntegrityError(f"{source} cannot be read: {e}") from e
        if note is None:
            raise IntegrityError(f"{source} is missing: the newest events cannot be vouched "
                                 "for", hint="restore it from a witness, or find out who "
                                 "removed it")
        try:
            return KnownCheckpoint(source, Checkpoint.open(note, verifier), note)
        except (NoteError, UnicodeDecodeError) as e:
            if attempt == 2:
                raise IntegrityError(f"{source} does not verify: {e}") from e
            time.sleep(0.001)
    raise AssertionError("unreachable")


def check_against_head(known: KnownCheckpoint, count: int,
                       event_hash: Callable[[int], str | None]) -> None:
    """The ledger (``count`` events) must hold the checkpoint's last event unchanged."""
    cp = known.checkpoint
    if cp.size > count:
        raise IntegrityError(
            f"{known.source} commits to {cp.size} events but the ledger holds {count}: "
            f"event(s) {count}..{cp.size - 1} are missing", seq=count,
            hint="the newest events were deleted (or lost in a power failure without "
                 "`durable`); restore the ledger from a backup")
    if cp.size and event_hash(cp.size - 1) != cp.head:
        raise IntegrityError(
            f"{known.source} commits to a different event {cp.size - 1} than the ledger "
            "holds: the ledger was rewritten from there", seq=cp.size - 1)


def publish(backend: LedgerBackend, note: bytes, witnesses: Sequence[Witness],
            durable: bool, errors: dict[str, str]) -> None:
    """Write the new checkpoint locally (failure propagates: an unanchored append must not
    look fine) and to each witness (failure is remembered and reported by ``verify``: an
    unreachable witness must not stop the runtime)."""
    backend.put_checkpoint(note)
    for w in witnesses:
        try:
            w.publish(note, durable)
            errors.pop(str(w.root), None)
        except LockTimeout as e:  # a process that can open the copy holds its lock
            errors[str(w.root)] = e.message
        except OSError as e:
            errors[str(w.root)] = f"{type(e).__name__}: {e}"


def sign_checkpoint(ledger_id: str, size: int, root: bytes, head: str, signer: Signer) -> bytes:
    return Checkpoint(origin_of(ledger_id), size, root, head).sign(signer)


def witness_path(path: str | os.PathLike[str]) -> Path:
    """The absolute, symlink-free form a witness is registered and compared under. A path
    that cannot be resolved (a symbolic link loop, ``~nosuchuser``, a name too long) is
    the caller's mistake, not a kernel fault."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as e:  # 3.11 reports a symlink loop as RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"witness {path} cannot be resolved: {reason}",
                         "give a directory path without symbolic link loops") from None
