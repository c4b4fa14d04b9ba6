"""PostgreSQL ledger backend: one schema per ledger, shared by processes on many hosts.

Appends are serialised per ledger by a session-level advisory lock whose key is derived
from the schema name: a writer takes it, reads the head inside a transaction, lets the
kernel build (and sign) the events, commits, publishes the signed checkpoint, and only
then lets go, exactly the order the SQLite backend keeps with its file lock. A writer that
dies mid-append loses its session, so PostgreSQL rolls back its transaction and releases
its lock: nothing is half-written and nobody waits for a dead writer. The primary key on
``seq`` is the second wall: even a writer that bypassed the lock could not fork the chain.

Each append is three round trips: the lock, ``BEGIN`` and the head query go out in one
pipeline; the inserts and ``COMMIT`` in a second; the unlock in a third, after the
checkpoint is written. Statements are prepared on first use.

The latest signed checkpoint stays on the local workspace (``ledger.checkpoint``), outside
the database, like the witnesses: whoever can rewrite the database cannot also roll back
the anchors that pin its head (docs/security.md, "PostgreSQL ledger").
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from ouroboros.storage.files import rewrite_in_place
from ouroboros.storage.ledger import (
    APPLIED,
    CHARGED,
    UNDONE,
    AfterCommit,
    EventBuilder,
    Head,
    IndexRow,
    LedgerUnavailable,
    PatchRecord,
    Snapshot,
    StoredEvent,
)
from ouroboros.storage.postgres.url import LedgerURL

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.events (
    seq  bigint PRIMARY KEY,
    body bytea NOT NULL,
    sig  bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.snapshots (
    seq  bigint PRIMARY KEY,
    data bytea NOT NULL,
    sig  bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.patch_log (
    hash bytea NOT NULL,
    kind smallint NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (hash, kind, seq)
);
"""
#: Rows per read batch: big enough to amortise the query, small enough to stay flat.
_BATCH = 2000
_IDLE = psycopg.pq.TransactionStatus.IDLE
_T = TypeVar("_T")


def lock_key(ledger: str) -> int:
    """The advisory lock key of a ledger: 64 bits of a hash of its schema name (the
    prefix keeps it apart from keys other applications pick in the same database)."""
    digest = hashlib.sha256(b"ouroboros-ledger\0" + ledger.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLedger:
    """The ``LedgerBackend`` on a PostgreSQL schema. ``create`` makes the schema and its
    tables (``ouro init`` / ``ouro migrate``); otherwise a missing schema is an integrity
    error (the ledger the workspace names is gone)."""

    def __init__(self, url: LedgerURL, checkpoint_path: Path | str, *, durable: bool = False,
                 create: bool = False) -> None:
        self.url = url
        self.durable = durable
        self.checkpoint_path = str(checkpoint_path)
        self._key = lock_key(url.ledger)
        self._lock = threading.Lock()
        # The local checkpoint's readers and writers on this host meet on a file lock (the
        # advisory lock orders writers, but a reader does not take it).
        self._file_lock = open(self.checkpoint_path + ".lock", "a+b")  # noqa: SIM115
        try:
            self._db = _connect(url)
            self._q = _statements(self._db, url.ledger)
            with self._errors():
                # Not durable: a commit returns before its WAL is flushed to disk, which
                # survives a crash of any client (the server has the commit) but not of
                # the server's machine: the SQLite backend's synchronous=NORMAL trade.
                self._db.execute(sql.SQL("SET synchronous_commit = {}").format(
                    sql.SQL("on" if durable else "off")), prepare=False)
                if create:
                    self._create()
                else:
                    self._check_schema()
        except BaseException:
            self._file_lock.close()
            raise

    # -------------------------------------------------------------- set-up
    def _create(self) -> None:
        schema = sql.Identifier(self.url.ledger)
        with self._db.transaction():
            # Two `ouro init`s racing on a new database: let one create, the other wait.
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            self._db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema),
                             prepare=False)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(sql.SQL(statement).format(s=schema),
                                     prepare=False)

    def _check_schema(self) -> None:
        row = self._db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND "
            "table_name IN ('events', 'snapshots', 'patch_log')", (self.url.ledger,)).fetchone()
        if row is None or row[0] != 3:
            raise LedgerUnavailable(
                f"the ledger {self.url.ledger!r} does not exist in {self.url.public} (its "
                "schema or tables are missing)",
                "the database was reset or the URL names another one; restore the ledger "
                "from a backup, or `ouro init` a new workspace", kind="integrity")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every psycopg failure as a ``LedgerUnavailable`` that says what to do."""
        try:
            yield
        except LedgerUnavailable:
            raise
        except psycopg.errors.UndefinedTable as e:
            raise LedgerUnavailable(f"the ledger {self.url.ledger!r} lost a table: "
                                    f"{_first_line(e)}", "restore it from a backup",
                                    kind="integrity") from e
        except (psycopg.errors.DataException, psycopg.errors.IntegrityError,
                psycopg.errors.UndefinedColumn) as e:
            raise LedgerUnavailable(f"the ledger {self.url.ledger!r} is damaged: "
                                    f"{_first_line(e)}", "restore it from a backup",
                                    kind="integrity") from e
        except psycopg.Error as e:
            raise _unavailable(self.url, e) from e

    # -------------------------------------------------------------- appends
    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None
               ) -> list[StoredEvent]:
        with self._lock, self._errors():
            db, q = self._db, self._q
            locked = False
            try:
                index: list[IndexRow] = []
                with db.pipeline():  # one round trip: lock, BEGIN, head
                    db.execute(q["lock"], (self._key,), prepare=True)
                    locked = True
                    db.execute("BEGIN")
                    top = db.execute(q["top"], prepare=True).fetchone()
                next_seq = 0 if top is None or top[0] is None else int(top[0]) + 1
                try:
                    # The builder runs outside any pipeline: it may read (catch up) and it
                    # may raise (RetryAppend), neither of which a pipeline should see.
                    events = list(build(Head(next_seq, lambda s: self._rows(s, None),
                                             index.extend)))
                    with db.pipeline(), db.cursor() as cur:  # one round trip: rows, COMMIT
                        if events:
                            cur.executemany(q["insert"], [(e.seq, e.body, e.sig)
                                                          for e in events])
                        if index:
                            cur.executemany(q["index"], index)
                        cur.execute("COMMIT")
                except BaseException:
                    if not db.broken and db.info.transaction_status != _IDLE:
                        db.execute("ROLLBACK")
                    raise
                if after_commit is not None:
                    after_commit(events)
                return events
            finally:
                if locked and not db.broken:
                    db.execute(q["unlock"], (self._key,), prepare=True)

    def _rows(self, start: int, stop: int | None, locked: bool = False
              ) -> Iterator[StoredEvent]:
        """Events from ``start`` in batches of ``_BATCH``, each its own query: no cursor
        stays open between batches (callers interleave reads and appends), and the ledger
        only grows, so batches never overlap or skip. ``locked``: take this object's lock
        per batch (a reader); the append's own catch-up already holds it."""
        while stop is None or start < stop:
            limit = _BATCH if stop is None else min(_BATCH, stop - start)

            def batch(start: int = start, limit: int = limit) -> list[Any]:
                return self._db.execute(self._q["rows"], (start, limit), prepare=True
                                        ).fetchall()

            if locked:
                rows = self._query(batch)
            else:
                with self._errors():
                    rows = batch()
            for seq, body, sig in rows:
                yield _stored(seq, body, sig)
            if len(rows) < limit:
                return
            start = int(rows[-1][0]) + 1

    def _query(self, fn: Callable[[], _T]) -> _T:
        with self._lock, self._errors():
            return fn()

    def head(self) -> Head:
        top = self._query(lambda: self._db.execute(self._q["top"], prepare=True).fetchone())
        return Head(0 if top is None or top[0] is None else int(top[0]) + 1, self.read)

    def count(self) -> int:
        return self.head().next_seq

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        return self._rows(start, stop, locked=True)

    # -------------------------------------------------------------- patch index
    def patch_record(self, patch_hash: bytes) -> PatchRecord | None:
        rows = self._query(lambda: self._db.execute(self._q["record"], (patch_hash,),
                                                    prepare=True).fetchall())
        if not rows:
            return None
        latest = {int(kind): int(seq) for kind, seq in rows}
        applied, undone = latest.get(APPLIED), latest.get(UNDONE)
        if undone is not None and (applied is None or undone < applied):
            undone = None  # undone, then applied again by a rollback: live
        return PatchRecord(applied, undone, latest.get(CHARGED))

    def find_patches(self, prefix_hex: str) -> list[bytes]:
        lo = bytes.fromhex((prefix_hex + "0" * 64)[:64])
        hi = bytes.fromhex((prefix_hex + "f" * 64)[:64])
        rows = self._query(lambda: self._db.execute(self._q["find"], (lo, hi, APPLIED))
                           .fetchall())
        return [bytes(r[0]) for r in rows]

    def patch_index(self) -> Iterator[IndexRow]:
        last: tuple[bytes, int, int] = (b"", 0, -1)
        while True:
            def page(after: tuple[bytes, int, int] = last) -> list[Any]:
                return self._db.execute(self._q["index_page"], (*after, _BATCH)).fetchall()

            rows = self._query(page)
            for h, kind, seq in rows:
                yield bytes(h), int(kind), int(seq)
            if len(rows) < _BATCH:
                return
            last = (bytes(rows[-1][0]), int(rows[-1][1]), int(rows[-1][2]))

    # -------------------------------------------------------------- checkpoint (local)
    def put_checkpoint(self, note: bytes) -> None:
        with _flocked(self._file_lock):
            rewrite_in_place(self.checkpoint_path, note, durable=self.durable)

    def get_checkpoint(self) -> bytes | None:
        with self._lock, _flocked(self._file_lock):
            try:
                with open(self.checkpoint_path, "rb") as fh:
                    return fh.read(1 << 20)
            except FileNotFoundError:
                return None

    # -------------------------------------------------------------- snapshots
    def put_snapshot(self, snapshot: Snapshot) -> None:
        self._query(lambda: self._db.execute(self._q["put_snapshot"],
                                             (snapshot.seq, snapshot.data, snapshot.sig)))

    def latest_snapshot(self, at_most: int | None = None) -> Snapshot | None:
        bound = (1 << 62) if at_most is None else at_most
        row = self._query(lambda: self._db.execute(self._q["latest_snapshot"], (bound,))
                          .fetchone())
        return None if row is None else _snapshot(row)

    def snapshot_seqs(self) -> list[int]:
        rows = self._query(lambda: self._db.execute(self._q["snapshot_seqs"]).fetchall())
        return [int(r[0]) for r in rows]

    def prune_snapshots(self, keep_last: int, keep_every: int) -> None:
        self._query(lambda: self._db.execute(self._q["prune"], (keep_last, keep_every)))

    def snapshot(self, seq: int) -> Snapshot | None:
        row = self._query(lambda: self._db.execute(self._q["snapshot"], (seq,)).fetchone())
        return None if row is None else _snapshot(row)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._file_lock.close()

    # -------------------------------------------------------------- migration
    def is_empty(self) -> bool:
        """No event, snapshot or index row: a ledger ``ouro migrate`` may fill."""
        row = self._query(lambda: self._db.execute(self._q["emptiness"]).fetchone())
        return row is not None and not any(row)

    def copy_in(self, events: Iterator[StoredEvent], snapshots: list[Snapshot],
                index: Iterator[IndexRow]) -> int:
        """Bulk-load another backend's rows in one transaction (``COPY``), refusing unless
        the ledger is empty; the append lock is held throughout so no writer can slip in.
        Returns the number of events copied."""
        with self._lock, self._errors():
            db, q = self._db, self._q
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                row = db.execute(q["emptiness"]).fetchone()
                if row is not None and any(row):
                    raise LedgerUnavailable(
                        f"the ledger {self.url.ledger!r} at {self.url.public} is not empty",
                        "migrate into an empty database or another ?ledger=NAME",
                        kind="usage")
                n = 0
                with db.cursor() as cur:
                    with cur.copy(q["copy_events"]) as copy:
                        for e in events:
                            copy.write_row((e.seq, e.body, e.sig))
                            n += 1
                    with cur.copy(q["copy_index"]) as copy:
                        for r in index:
                            copy.write_row(r)
                    if snapshots:
                        cur.executemany(q["put_snapshot"],
                                        [(s.seq, s.data, s.sig) for s in snapshots])
            return n


    def discard(self) -> None:
        """Empty this ledger (a migration whose copy did not verify)."""
        with self._lock, self._errors(), self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            self._db.execute(self._q["truncate"])


def _statements(db: psycopg.Connection[Any], ledger: str) -> dict[str, str]:
    s = sql.Identifier(ledger)

    def q(text: str) -> str:
        return sql.SQL(text).format(s=s).as_string(db)

    return {
        "lock": "SELECT pg_advisory_lock(%s)",
        "unlock": "SELECT pg_advisory_unlock(%s)",
        "top": q("SELECT max(seq) FROM {s}.events"),
        "insert": q("INSERT INTO {s}.events (seq, body, sig) VALUES (%s, %s, %s)"),
        "index": q("INSERT INTO {s}.patch_log (hash, kind, seq) VALUES (%s, %s, %s) "
                   "ON CONFLICT DO NOTHING"),
        "rows": q("SELECT seq, body, sig FROM {s}.events WHERE seq >= %s ORDER BY seq "
                  "LIMIT %s"),
        "record": q("SELECT kind, max(seq) FROM {s}.patch_log WHERE hash = %s GROUP BY kind"),
        "find": q("SELECT DISTINCT hash FROM {s}.patch_log WHERE hash BETWEEN %s AND %s "
                  "AND kind = %s"),
        "index_page": q("SELECT hash, kind, seq FROM {s}.patch_log WHERE (hash, kind, seq) > "
                        "(%s, %s, %s) ORDER BY hash, kind, seq LIMIT %s"),
        "put_snapshot": q("INSERT INTO {s}.snapshots (seq, data, sig) VALUES (%s, %s, %s) "
                          "ON CONFLICT (seq) DO UPDATE SET data = excluded.data, "
                          "sig = excluded.sig"),
        "latest_snapshot": q("SELECT seq, data, sig FROM {s}.snapshots WHERE seq <= %s "
                             "ORDER BY seq DESC LIMIT 1"),
        "snapshot_seqs": q("SELECT seq FROM {s}.snapshots ORDER BY seq"),
        "snapshot": q("SELECT seq, data, sig FROM {s}.snapshots WHERE seq = %s"),
        "prune": q("DELETE FROM {s}.snapshots WHERE seq < (SELECT min(seq) FROM (SELECT seq "
                   "FROM {s}.snapshots ORDER BY seq DESC LIMIT %s) AS newest) AND seq NOT IN "
                   "(SELECT min(seq) FROM {s}.snapshots GROUP BY seq / %s)"),
        "emptiness": q("SELECT EXISTS (SELECT 1 FROM {s}.events), EXISTS (SELECT 1 FROM "
                       "{s}.snapshots), EXISTS (SELECT 1 FROM {s}.patch_log)"),
        "truncate": q("TRUNCATE {s}.events, {s}.snapshots, {s}.patch_log"),
        "copy_events": q("COPY {s}.events (seq, body, sig) FROM STDIN"),
        "copy_index": q("COPY {s}.patch_log (hash, kind, seq) FROM STDIN"),
    }


def _connect(url: LedgerURL) -> psycopg.Connection[Any]:
    try:
        # autocommit: the backend says BEGIN/COMMIT itself, so a read is one statement,
        # never an open transaction that would hold back vacuum.
        return psycopg.connect(url.conninfo, autocommit=True, prepare_threshold=0,
                               application_name="ouroboros",
                               connect_timeout=_connect_timeout(url))
    except psycopg.Error as e:
        raise _unavailable(url, e) from e


def _connect_timeout(url: LedgerURL) -> int:
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url.conninfo).get("connect_timeout")
    return int(given) if given is not None and str(given).isdigit() else 10


def _unavailable(url: LedgerURL, e: psycopg.Error) -> LedgerUnavailable:
    text = _first_line(e)
    if "password authentication failed" in text or "no password supplied" in text:
        hint = ("set PGPASSWORD, a ~/.pgpass entry, or $OURO_LEDGER_URL with the password; "
                "the workspace stores the URL without it")
    elif isinstance(e, psycopg.OperationalError):
        hint = "is the PostgreSQL server running and reachable? check the URL's host and port"
    else:
        hint = "check the ledger URL and the server's logs"
    return LedgerUnavailable(f"the PostgreSQL ledger at {url.public} cannot be used: {text}",
                             hint)


@contextmanager
def _flocked(fh: Any) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    seq, data, sig = row
    if not isinstance(seq, int) or not isinstance(data, bytes) or not isinstance(sig, bytes):
        raise LedgerUnavailable(f"snapshot {seq!r} is damaged", kind="integrity")
    return Snapshot(seq, data, sig)


def _stored(seq: object, body: object, sig: object) -> StoredEvent:
    """A row as the kernel sees it; other types mean someone altered the table."""
    if not isinstance(seq, int) or not isinstance(body, bytes) or not isinstance(sig, bytes):
        raise LedgerUnavailable(f"ledger row {seq!r} is damaged", kind="integrity")
    return StoredEvent(seq, body, sig)
