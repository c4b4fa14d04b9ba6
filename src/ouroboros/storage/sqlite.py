"""SQLite ledger backend (WAL): the embedded default."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ouroboros.storage.files import (
    ON_LOOP,
    InPlaceFile,
    LockTimeout,
    lock_bounded,
    lock_timeout,
    read_note,
    regular_opener,
)
from ouroboros.storage.ledger import (
    APPLIED,
    AfterCommit,
    EventBuilder,
    Head,
    IndexMoved,
    IndexRow,
    PatchRecord,
    Snapshot,
    StoredEvent,
    hash_range,
    record_of,
)
from ouroboros.storage.wal import WalCheckpointer

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
CREATE TABLE IF NOT EXISTS patch_log (
    hash BLOB NOT NULL,
    kind INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (hash, kind, seq)
) WITHOUT ROWID;
"""
#: Rows per read batch: big enough to amortise the query, small enough to stay flat.
_BATCH = 2000
#: SQLite's own wait for its write lock (another process writing the file without the
#: ledger's lock file: ``sqlite3 ledger.db``, a backup tool), in milliseconds.
_BUSY_MS = 30000


class LedgerBusy(Exception):
    """The writers' lock is held by another process and this thread asked not to wait
    (`no_wait`): raised before anything is written."""


_NO_WAIT = threading.local()


class no_wait:
    """For the ``with`` block, in this thread, until an append of the block commits, a
    writers' lock another process holds is `LedgerBusy` at once instead of a wait (an
    event loop hands the work, nothing of it written, to a thread); for the whole block, a
    witness copy another process holds is skipped at once (`files.ON_LOOP`), left to catch
    up on a later append."""

    def __enter__(self) -> None:
        _NO_WAIT.on = True
        ON_LOOP.on = True

    def __exit__(self, *exc: object) -> None:
        _NO_WAIT.on = False
        ON_LOOP.on = False


class _exclusive:
    """The writers' OS lock of ``ledger`` for the ``with`` block (a class, not a generator:
    it is taken on every append, and a generator context costs a microsecond more).
    Uncontended it is one ``flock``; held by another process, a wait bounded by
    ``OURO_LOCK_TIMEOUT`` (`files.lock_bounded`), then `LockTimeout`."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: SQLiteLedger) -> None:
        self.ledger = ledger

    def __enter__(self) -> None:
        if fcntl is None:  # not POSIX: SQLite's own locking still serialises writers
            return
        fd = self.ledger._writer_lock.fileno()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if getattr(_NO_WAIT, "on", False):
            raise LedgerBusy(self.ledger.path)
        try:
            lock_bounded(fd, fcntl.LOCK_EX, self.ledger.path + ".lock")
        except LockTimeout:
            # the given-up wait may still take and drop the lock on this open file
            self.ledger._reopen_writer_lock()
            raise

    def __exit__(self, *exc: object) -> None:
        if fcntl is not None:
            fcntl.flock(self.ledger._writer_lock.fileno(), fcntl.LOCK_UN)


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
        self._checkpoint = InPlaceFile(self.checkpoint_path)
        self._lock = threading.Lock()
        # Writers queue on an OS lock first: SQLite's own busy handler polls with sleeps of
        # a millisecond and more, while a blocked flock wakes the moment it is released.
        self._writer_lock = self._open_writer_lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        # 8 KiB pages: an event (about 1.2-1.6 KB) packs 5 to a page instead of 2 to a
        # 4 KiB page, which keeps the database near the bytes it holds. Only takes effect
        # when the file is created.
        self._db.execute("PRAGMA page_size=8192")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        # WAL checkpoints run on a thread of their own at SQLite's cadence, not inside
        # whichever COMMIT crosses it (storage/wal.py: durability is unchanged).
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._wal = WalCheckpointer(self.path, "FULL" if durable else "NORMAL",
                                    int(self._db.execute("PRAGMA page_size").fetchone()[0]))
        #: The connection's busy_timeout now: 0 after a `no_wait` append (the server's
        #: event loop), set again only when the mode changes (no cost per append).
        self._busy_ms = _BUSY_MS
        self._db.executescript(_SCHEMA)
        self._seen_version: int | None = None
        self._known_next: int | None = None
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(snapshots)")}
        if "sig" not in columns:  # a database from before snapshots were signed
            self._db.execute("ALTER TABLE snapshots ADD COLUMN sig BLOB NOT NULL DEFAULT x''")

    def _open_writer_lock(self) -> BinaryIO:
        return open(self.path + ".lock", "a+b",
                    opener=regular_opener)

    def _reopen_writer_lock(self) -> None:
        old, self._writer_lock = self._writer_lock, self._open_writer_lock()
        old.close()

    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None,
               unrecorded: Sequence[bytes] = ()) -> list[StoredEvent]:
        with self._lock, _exclusive(self):
            db = self._db
            self._begin(db)
            index: list[IndexRow] = []
            try:
                for h in unrecorded:
                    if db.execute("SELECT 1 FROM patch_log WHERE hash = ? LIMIT 1",
                                  (h,)).fetchone() is not None:
                        raise IndexMoved
                events = list(build(Head(self._next_seq(db),
                                         lambda start: self._rows(db, start, None, None),
                                         index.extend)))
                db.executemany("INSERT INTO events (seq, body, sig) VALUES (?, ?, ?)",
                               [(e.seq, e.body, e.sig) for e in events])
                if index:
                    db.executemany("INSERT OR IGNORE INTO patch_log (hash, kind, seq) "
                                   "VALUES (?, ?, ?)", index)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._wal.committed(db)
            # Committed: from here on this thread's work cannot be redone elsewhere, so
            # later locks it takes (an EffectFailed record) are waited for, not refused.
            _NO_WAIT.on = False
            if events:
                self._known_next = events[-1].seq + 1  # our own commit: no need to ask again
            if after_commit is not None:
                after_commit(events)
            return events

    def _begin(self, db: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: SQLite's write lock. Under `no_wait` a lock another process
        holds is `LedgerBusy` at once (SQLite's busy wait would block the event loop);
        otherwise the wait is bounded as every lock wait is (``OURO_LOCK_TIMEOUT``, when
        coming from a `no_wait` attempt, else SQLite's 30 s), then `LockTimeout`."""
        if getattr(_NO_WAIT, "on", False):
            wait = 0
        elif self._busy_ms == 0:  # a redo after a refused no_wait attempt: bounded
            wait = int(lock_timeout() * 1000)
        else:
            wait = self._busy_ms
        if wait != self._busy_ms:
            db.execute(f"PRAGMA busy_timeout={wait}")
            self._busy_ms = wait
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            if wait == 0 and getattr(_NO_WAIT, "on", False):
                raise LedgerBusy(self.path) from None
            raise LockTimeout(self.path, wait / 1000, None) from None

    def _next_seq(self, db: sqlite3.Connection) -> int:
        """The next seq, asking SQLite only when another connection committed since we
        last looked (``PRAGMA data_version`` changes exactly then; it reads no table)."""
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._seen_version or self._known_next is None:
            row = db.execute("SELECT max(seq) FROM events").fetchone()
            self._known_next = 0 if row[0] is None else int(row[0]) + 1
            self._seen_version = version
        return self._known_next

    def _rows(self, db: sqlite3.Connection, start: int, stop: int | None,
              lock: threading.Lock | None) -> Iterator[StoredEvent]:
        """Events from ``start`` in batches of ``_BATCH``, each its own query: no cursor
        stays open between batches (callers interleave reads and appends on this
        connection), and the ledger only grows, so batches never overlap or skip."""
        while stop is None or start < stop:
            limit = _BATCH if stop is None else min(_BATCH, stop - start)
            query = ("SELECT seq, body, sig FROM events WHERE seq >= ? ORDER BY seq LIMIT ?")
            if lock is None:
                rows = db.execute(query, (start, limit)).fetchall()
            else:
                with lock:
                    rows = db.execute(query, (start, limit)).fetchall()
            for seq, body, sig in rows:
                yield _stored(seq, body, sig)
            if len(rows) < limit:
                return
            start = int(rows[-1][0]) + 1

    def head(self) -> Head:
        with self._lock:
            return Head(self._next_seq(self._db), self.read)

    def count(self) -> int:
        return self.head().next_seq

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        return self._rows(self._db, start, stop, self._lock)

    def patch_record(self, patch_hash: bytes) -> PatchRecord | None:
        with self._lock:
            rows = self._db.execute("SELECT kind, max(seq) FROM patch_log WHERE hash = ? "
                                    "GROUP BY kind", (patch_hash,)).fetchall()
        if not rows:
            return None
        return record_of({int(kind): int(seq) for kind, seq in rows})

    def find_patches(self, prefix_hex: str) -> list[bytes]:
        lo, hi = hash_range(prefix_hex)
        with self._lock:
            return [bytes(r[0]) for r in self._db.execute(
                "SELECT DISTINCT hash FROM patch_log WHERE hash BETWEEN ? AND ? AND kind = ?",
                (lo, hi, APPLIED))]

    def patch_index(self) -> Iterator[IndexRow]:
        last = (b"", 0, -1)
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT hash, kind, seq FROM patch_log WHERE (hash, kind, seq) > (?, ?, ?) "
                    "ORDER BY hash, kind, seq LIMIT ?", (*last, _BATCH)).fetchall()
            for h, kind, seq in rows:
                yield bytes(h), int(kind), int(seq)
            if len(rows) < _BATCH:
                return
            last = (bytes(rows[-1][0]), int(rows[-1][1]), int(rows[-1][2]))

    def put_checkpoint(self, note: bytes) -> None:
        self._checkpoint.rewrite(note, durable=self.durable)

    def get_checkpoint(self) -> bytes | None:
        with self._lock, _exclusive(self):
            return read_note(self.checkpoint_path)

    def put_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock, self._skipped_if_busy():
            self._db.execute("INSERT OR REPLACE INTO snapshots (seq, data, sig) VALUES (?, ?, ?)",
                             (snapshot.seq, snapshot.data, snapshot.sig))
            self._wal.committed(self._db)

    @contextlib.contextmanager
    def _skipped_if_busy(self) -> Iterator[None]:
        """A snapshot write (a cache of the fold: the next interval writes another) on a
        connection that must not wait (the event loop's, after a `no_wait` append) is
        skipped when another process holds SQLite's write lock, instead of failing a
        submit that already committed."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if self._busy_ms != 0 or e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise

    def latest_snapshot(self, at_most: int | None = None) -> Snapshot | None:
        with self._lock:
            if at_most is None:
                row = self._db.execute(
                    "SELECT seq, data, sig FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute(
                    "SELECT seq, data, sig FROM snapshots WHERE seq <= ? ORDER BY seq DESC "
                    "LIMIT 1", (at_most,)).fetchone()
        return None if row is None else _snapshot(row)

    def snapshot_seqs(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT seq FROM snapshots ORDER BY seq")]

    def prune_snapshots(self, keep_last: int, keep_every: int) -> None:
        with self._lock, self._skipped_if_busy():
            self._db.execute(
                "DELETE FROM snapshots WHERE seq < (SELECT min(seq) FROM (SELECT seq FROM "
                "snapshots ORDER BY seq DESC LIMIT ?)) AND seq NOT IN (SELECT min(seq) FROM "
                "snapshots GROUP BY seq / ?)", (keep_last, keep_every))
            self._wal.committed(self._db)

    def snapshot(self, seq: int) -> Snapshot | None:
        with self._lock:
            row = self._db.execute("SELECT seq, data, sig FROM snapshots WHERE seq = ?",
                                   (seq,)).fetchone()
        return None if row is None else _snapshot(row)

    def seal_moved(self, where: str | None) -> None:
        """After ``ouro migrate``: refuse every later append here (a process that opened
        the workspace before the switch must not grow the old ledger), naming ``where``
        the ledger went; ``None`` lifts the seal (a migration that failed)."""
        with self._lock:
            self._db.execute("DROP TRIGGER IF EXISTS ledger_moved")
            if where is not None:
                message = f"this ledger moved to {where}: reopen the workspace".replace("'", "")
                self._db.execute("CREATE TRIGGER ledger_moved BEFORE INSERT ON events BEGIN "
                                 f"SELECT RAISE(ABORT, '{message}'); END")

    def close(self) -> None:
        self._wal.close()  # first: its connection goes before the writer's last one
        with self._lock:
            self._db.close()
            self._writer_lock.close()
            self._checkpoint.close()


def _snapshot(row: tuple[object, ...]) -> Snapshot:
    """A snapshot row; NULLs or other types mean a damaged file (reported as integrity)."""
    seq, data, sig = row
    if not isinstance(seq, int) or not isinstance(data, bytes | memoryview) or not isinstance(
            sig, bytes | memoryview):
        raise sqlite3.DatabaseError(f"snapshot {seq!r} is damaged")
    return Snapshot(seq, bytes(data), bytes(sig))


def _stored(seq: object, body: object, sig: object) -> StoredEvent:
    """A row as the kernel sees it; a damaged file can hand back NULLs or other types,
    which is a damaged database, not a bug (the CLI reports it as an integrity error)."""
    if not isinstance(seq, int) or not isinstance(body, bytes | memoryview) or not isinstance(
            sig, bytes | memoryview):
        raise sqlite3.DatabaseError(f"ledger row {seq!r} is damaged")
    return StoredEvent(seq, bytes(body), bytes(sig))
