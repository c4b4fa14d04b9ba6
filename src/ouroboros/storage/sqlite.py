"""SQLite ledger backend (WAL): the embedded default."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ouroboros.storage.files import rewrite_in_place
from ouroboros.storage.ledger import AfterCommit, EventBuilder, Head, Snapshot, StoredEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    sig  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    sig  BLOB NOT NULL
);
"""


@contextmanager
def _exclusive(fh: BinaryIO) -> Iterator[None]:
    if fcntl is None:  # not POSIX: SQLite's own locking still serialises writers
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class SQLiteLedger:
    """Events in one table keyed by ``seq``; the primary key makes a fork impossible.

    ``synchronous=NORMAL`` in WAL mode survives any process crash (a transaction is
    either in the WAL whole or not at all); ``durable=True`` selects ``FULL`` so a power
    loss cannot drop committed events either.

    The latest signed checkpoint is a file beside the database (``ledger.checkpoint``),
    rewritten after each commit while the writers' lock is held, so it never runs ahead
    of the events it commits to, two writers never publish out of order, and a reader
    (who takes the same lock) never sees half of one (see ``storage.files``).
    """

    def __init__(self, path: Path | str, *, durable: bool = False) -> None:
        self.path = str(path)
        self.durable = durable
        self.checkpoint_path = str(Path(self.path).with_suffix(".checkpoint"))
        self._lock = threading.Lock()
        # Writers queue on an OS lock first: SQLite's own busy handler polls with sleeps of
        # a millisecond and more, while a blocked flock wakes the moment it is released.
        self._writer_lock = open(self.path + ".lock", "a+b")  # noqa: SIM115 - lives with self
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(snapshots)")}
        if "sig" not in columns:  # a database from before snapshots were signed
            self._db.execute("ALTER TABLE snapshots ADD COLUMN sig BLOB NOT NULL DEFAULT x''")

    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None
               ) -> list[StoredEvent]:
        with self._lock, _exclusive(self._writer_lock):
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                events = list(build(Head(self._next_seq(db),
                                         lambda start: self._rows(db, start, None))))
                db.executemany("INSERT INTO events (seq, body, sig) VALUES (?, ?, ?)",
                               [(e.seq, e.body, e.sig) for e in events])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            if after_commit is not None:
                after_commit(events)
            return events

    @staticmethod
    def _next_seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT max(seq) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    @staticmethod
    def _rows(db: sqlite3.Connection, start: int, stop: int | None) -> Iterator[StoredEvent]:
        # fetchall first: callers may interleave reads and appends on this connection
        if stop is None:
            rows = db.execute("SELECT seq, body, sig FROM events WHERE seq >= ? ORDER BY seq",
                              (start,)).fetchall()
        else:
            rows = db.execute("SELECT seq, body, sig FROM events WHERE seq >= ? AND seq < ? "
                              "ORDER BY seq", (start, stop)).fetchall()
        return (StoredEvent(int(seq), bytes(body), bytes(sig)) for seq, body, sig in rows)

    def head(self) -> Head:
        with self._lock:
            return Head(self._next_seq(self._db), self.read)

    def count(self) -> int:
        return self.head().next_seq

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        with self._lock:
            return self._rows(self._db, start, stop)

    def put_checkpoint(self, note: bytes) -> None:
        rewrite_in_place(self.checkpoint_path, note, durable=self.durable)

    def get_checkpoint(self) -> bytes | None:
        with self._lock, _exclusive(self._writer_lock):
            try:
                with open(self.checkpoint_path, "rb") as fh:
                    return fh.read(1 << 20)
            except FileNotFoundError:
                return None

    def put_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO snapshots (seq, data, sig) VALUES (?, ?, ?)",
                             (snapshot.seq, snapshot.data, snapshot.sig))

    def latest_snapshot(self, at_most: int | None = None) -> Snapshot | None:
        with self._lock:
            if at_most is None:
                row = self._db.execute(
                    "SELECT seq, data, sig FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute(
                    "SELECT seq, data, sig FROM snapshots WHERE seq <= ? ORDER BY seq DESC "
                    "LIMIT 1", (at_most,)).fetchone()
        return None if row is None else Snapshot(int(row[0]), bytes(row[1]), bytes(row[2]))

    def snapshot_seqs(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT seq FROM snapshots ORDER BY seq")]

    def snapshot(self, seq: int) -> Snapshot | None:
        with self._lock:
            row = self._db.execute("SELECT seq, data, sig FROM snapshots WHERE seq = ?",
                                   (seq,)).fetchone()
        return None if row is None else Snapshot(int(row[0]), bytes(row[1]), bytes(row[2]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._writer_lock.close()
