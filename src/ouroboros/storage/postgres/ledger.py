"""PostgreSQL ledger backend: one schema per ledger, shared by processes on many hosts.

An append is one round trip: the kernel builds (and signs) the events on the head this
process last saw, and one call of the schema's ``append_events`` function takes a
transaction-level advisory lock (its key derived from the schema name), checks that the
head is still the one the events extend, and inserts them with their patch-index rows;
the lock goes with the commit. If another writer moved the head, nothing is stored and
the reply carries the events the caller missed: the kernel catches up as it does on
SQLite (unrelated events are folded and the decision stands; events touching the patch's
inputs make it decide again) and the call is repeated. A writer that dies mid-call loses
its session, so PostgreSQL rolls its transaction back and drops its lock: nothing is
half-written and nobody waits for a dead writer. The primary key on ``seq`` is the second
wall: even a writer that bypassed the function could not fork the chain.

The latest signed checkpoint stays on the local workspace (``ledger.checkpoint``), outside
the database, like the witnesses: whoever can rewrite the database cannot also roll back
the anchors that pin its head (docs/security.md, "PostgreSQL ledger"). It is written once
the commit is in, so it never runs ahead of the events it vouches for; writers on one host
may publish in either order, so a checkpoint is only replaced by one of a tree at least as
large (compared under the checkpoint's file lock): it never moves back.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import pq, sql
from psycopg.types.numeric import Int8

from ouroboros.storage.files import (
    LockTimeout,
    lock_bounded,
    read_note,
    regular_opener,
    rewrite_unless_newer,
)
from ouroboros.storage.ledger import (
    APPLIED,
    AfterCommit,
    EventBuilder,
    Head,
    IndexMoved,
    IndexRow,
    LedgerUnavailable,
    PatchRecord,
    RetryAppend,
    Snapshot,
    StoredEvent,
    hash_range,
    record_of,
)
from ouroboros.storage.postgres import wire
from ouroboros.storage.postgres.deadline import Deadline
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
#: (table, column, type) of every column of the tables above.
_COLUMNS = {("events", "seq", "bigint"), ("events", "body", "bytea"),
            ("events", "sig", "bytea"), ("snapshots", "seq", "bigint"),
            ("snapshots", "data", "bytea"), ("snapshots", "sig", "bytea"),
            ("patch_log", "hash", "bytea"), ("patch_log", "kind", "smallint"),
            ("patch_log", "seq", "bigint")}
#: The append, server-side: one round trip, the advisory lock held only for the insert.
#: Returns a status row (stored?, the head after the call) and, when the head had moved,
#: up to ``_BATCH`` of the events from ``expect`` on, so the caller catches up without
#: asking again. ``expect`` is the seq the first event takes; the events are stored at
#: ``expect``, ``expect + 1``, ... (the caller checked their seqs match). ``unrecorded``:
#: patch hashes the caller decided on without looking them up; if the patch index holds
#: one, nothing is stored and the status row says so by a refusal at the expected head.
_APPEND_FUNCTION = """
DROP FUNCTION IF EXISTS {s}.append_events(bigint, bigint, bytea[], bytea[], bytea[],
                                          smallint[], bigint[]);
CREATE OR REPLACE FUNCTION {s}.append_events(
    lock_key bigint, expect bigint, bodies bytea[], sigs bytea[],
    index_hash bytea[], index_kind smallint[], index_seq bigint[],
    unrecorded bytea[] DEFAULT NULL)
RETURNS TABLE (stored boolean, at_seq bigint, ev_body bytea, ev_sig bytea)
LANGUAGE plpgsql
-- PL/pgSQL keeps a generic plan made when the tables were tiny, where a sequential scan
-- is cheapest; as the patch index grows that plan makes every append (under the lock)
-- slower. Every statement here has an index to use, so forbid the scans.
SET enable_seqscan = off
AS $fn$
DECLARE
    head bigint;
    n integer := coalesce(array_length(bodies, 1), 0);
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT coalesce(max(e.seq) + 1, 0) INTO head FROM {s}.events AS e;
    IF head <> expect THEN
        RETURN QUERY SELECT false, head, NULL::bytea, NULL::bytea;
        RETURN QUERY SELECT NULL::boolean, e.seq, e.body, e.sig FROM {s}.events AS e
            WHERE e.seq >= expect ORDER BY e.seq LIMIT {batch};
        RETURN;
    END IF;
    IF unrecorded IS NOT NULL AND EXISTS (
            SELECT 1 FROM {s}.patch_log AS p WHERE p.hash = ANY (unrecorded)) THEN
        RETURN QUERY SELECT false, head, NULL::bytea, NULL::bytea;
        RETURN;
    END IF;
    IF n = 0 OR coalesce(array_length(sigs, 1), 0) <> n THEN
        RAISE EXCEPTION 'append_events: % bodies and % signatures', n,
            coalesce(array_length(sigs, 1), 0) USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO {s}.events (seq, body, sig)
        SELECT expect + t.o - 1, t.b, t.s FROM unnest(bodies, sigs) WITH ORDINALITY AS t(b, s, o);
    IF index_hash IS NOT NULL THEN
        INSERT INTO {s}.patch_log (hash, kind, seq)
            SELECT * FROM unnest(index_hash, index_kind, index_seq) ON CONFLICT DO NOTHING;
    END IF;
    RETURN QUERY SELECT true, expect + n, NULL::bytea, NULL::bytea;
END
$fn$
"""
#: A moved head is retried this many times within one append before the kernel is told
#: (``RetryAppend``: it re-decides on a fresh state, with its own bound).
_ATTEMPTS = 20
#: Rows per read batch: big enough to amortise the query, small enough to stay flat.
_BATCH = 2000
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
        self._known_next: int | None = None  # the newest head this object has seen
        self._lock = threading.Lock()
        #: ``self._lock`` for a call: waited for at most the URL's timeout (the threads
        #: ahead may each be waiting that long on a frozen server).
        self._turn = _Turn(self._lock, url)
        self._deadline = Deadline(url.timeout)
        # The local checkpoint's readers and writers on this host meet on a file lock (the
        # advisory lock orders writers, but a reader does not take it).
        self._file_lock = open(self.checkpoint_path + ".lock", "a+b",  # noqa: SIM115
                               opener=regular_opener)
        try:
            self._db = _connect(url)
            self._q = _statements(self._db, url.ledger)
            self._fast = _fast_statements(self._db, url.ledger)
            self._key_param = wire.int8(self._key)
            with self._errors():
                self._set_up_session()
                if create:
                    self._create()
                else:
                    self._check_schema()
        except BaseException:
            self._file_lock.close()
            raise

    # -------------------------------------------------------------- set-up
    def _set_up_session(self) -> None:
        # Not durable: a commit returns before its WAL is flushed to disk, which survives
        # a crash of any client (the server has the commit) but not of the server's
        # machine: the SQLite backend's synchronous=NORMAL trade.
        self._db.execute(sql.SQL("SET synchronous_commit = {}").format(
            sql.SQL("on" if self.durable else "off")), prepare=False)

    def _live(self) -> None:
        """A new session when the last one was lost (the server restarted, an
        administrator ended it, the network dropped): the call that met the dead session
        failed, and a long-lived process (``ouro serve``) recovers on its next call
        instead of failing every call until restarted. The head is read afresh: whether
        the lost call's append was committed is the server's to say."""
        if not self._db.closed and self._db.pgconn.status == pq.ConnStatus.OK:
            return
        self._db.close()
        self._db = _connect(self.url)
        self._fast = _fast_statements(self._db, self.url.ledger)
        self._known_next = None
        self._set_up_session()

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
            # CREATE TABLE IF NOT EXISTS kept any table of that name: another
            # application's ``events`` in the schema ?ledger= named. Refuse it inside the
            # transaction, so nothing of ours is left in that schema.
            columns = set(self._db.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name IN ('events', 'snapshots', "
                "'patch_log')", (self.url.ledger,)).fetchall())
            if columns != _COLUMNS:
                raise LedgerUnavailable(
                    f"the schema {self.url.ledger!r} in {self.url.public} holds tables that "
                    "are not an Ouroboros ledger's (another application's?)",
                    "name another schema with ?ledger=NAME", kind="usage")
            self._create_function()

    def _create_function(self) -> None:
        self._db.execute(sql.SQL(_APPEND_FUNCTION).format(
            s=sql.Identifier(self.url.ledger), batch=sql.Literal(_BATCH)), prepare=False)

    def _check_schema(self) -> None:
        row = self._db.execute(
            "SELECT count(*), to_regprocedure(%s) IS NOT NULL FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name IN ('events', 'snapshots', 'patch_log')",
            (self._q["signature"], self.url.ledger)).fetchone()
        if row is None or row[0] != 3:
            raise LedgerUnavailable(
                f"the ledger {self.url.ledger!r} does not exist in {self.url.public} (its "
                "schema or tables are missing)",
                "the database was reset or the URL names another one; restore the ledger "
                "from a backup, or `ouro init` a new workspace", kind="integrity")
        if not row[1]:  # a ledger made before appends were one server-side call
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                self._create_function()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every psycopg failure as a ``LedgerUnavailable`` that says what to do."""
        try:
            self._live()
            with self._deadline.armed(self._db):
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
            raise _unavailable(self.url, e, cut=self._deadline.fired) from e

    # -------------------------------------------------------------- appends
    def append(self, build: EventBuilder, after_commit: AfterCommit | None = None,
               unrecorded: Sequence[bytes] = ()) -> list[StoredEvent]:
        # No lock is held between calls: writers race, the function's advisory lock orders
        # their commits, and a loser builds again on the head the winner left (measured
        # faster on 2 cores than making this host's writers take turns under a file lock
        # across the round trip: a descheduled holder stalls them all).
        with self._turn, self._errors():
            next_seq = self._known_next if self._known_next is not None else self._top()
            missed: list[StoredEvent] = []  # events the last refusal carried
            for _ in range(_ATTEMPTS):
                index: list[IndexRow] = []
                events = list(build(Head(next_seq, self._since(next_seq, missed),
                                         index.extend)))
                if not events:
                    break
                if [e.seq for e in events] != list(range(next_seq, next_seq + len(events))):
                    raise LedgerUnavailable("the kernel built events out of sequence "
                                            f"(from {events[0].seq}, head {next_seq})",
                                            kind="integrity")
                rows = self._fast["append"].run((
                    self._key_param, wire.int8(next_seq),
                    wire.bytea_array([e.body for e in events]),
                    wire.bytea_array([e.sig for e in events]),
                    wire.bytea_array([r[0] for r in index]) if index else None,
                    wire.int2_array([r[1] for r in index]) if index else None,
                    wire.int8_array([r[2] for r in index]) if index else None,
                    wire.bytea_array(list(unrecorded)) if unrecorded else None))
                # The server's head, even one lower than we believed (rows deleted behind
                # our back): the kernel then sees the ledger shrink instead of retrying.
                head = self._known_next = _int(rows[0][1])
                if rows[0][0] == b"\x01":
                    break
                if head == next_seq:  # refused on the right head: a patch is recorded
                    raise IndexMoved
                # Another writer got in first: build again on the head it left, with the
                # events it appended at hand.
                missed = [_stored(_int(r[1]), r[2], r[3]) for r in rows[1:]]
                next_seq = head
            else:
                raise RetryAppend
        # The checkpoint is signed and written once the commit is in and the host's lock
        # is free again: the next writer need not wait for it, and a late one never
        # replaces a newer checkpoint (``put_checkpoint``; witnesses do the same).
        if after_commit is not None:
            after_commit(events)
        return events

    def _since(self, head: int, missed: list[StoredEvent]
               ) -> Callable[[int], Iterator[StoredEvent]]:
        """A builder's catch-up: events from ``start`` up to the head it was given (never
        past it: the builder extends exactly that head), from the last refusal's rows
        when they cover the range, else read."""
        def since(start: int) -> Iterator[StoredEvent]:
            if missed and missed[0].seq <= start and missed[-1].seq >= head - 1:
                return iter(missed[start - missed[0].seq:head - missed[0].seq])
            return self._rows(start, head)
        return since

    def _top(self) -> int:
        [(top,)] = self._fast["top"].run(())
        self._known_next = 0 if top is None else _int(top) + 1
        return self._known_next

    def _saw(self, next_seq: int) -> None:
        """Remember a head that rows read show: the next append is built on the newest
        seen (the function checks it anyway)."""
        if self._known_next is None or next_seq > self._known_next:
            self._known_next = next_seq

    def _rows(self, start: int, stop: int | None, locked: bool = False
              ) -> Iterator[StoredEvent]:
        """Events from ``start`` in batches of ``_BATCH``, each its own query: no cursor
        stays open between batches (callers interleave reads and appends), and the ledger
        only grows, so batches never overlap or skip. ``locked``: take this object's lock
        per batch (a reader); the append's own catch-up already holds it."""
        while stop is None or start < stop:
            limit = _BATCH if stop is None else min(_BATCH, stop - start)

            def batch(start: int = start, limit: int = limit) -> list[Any]:
                return self._db.execute(self._q["rows"], (Int8(start), Int8(limit)),
                                        prepare=True, binary=True).fetchall()

            if locked:
                rows = self._query(batch)
            else:
                with self._errors():
                    rows = batch()
            if rows:
                self._saw(int(rows[-1][0]) + 1)
            for seq, body, sig in rows:
                yield _stored(seq, body, sig)
            if len(rows) < limit:
                return
            start = int(rows[-1][0]) + 1

    def _query(self, fn: Callable[[], _T]) -> _T:
        with self._turn, self._errors():
            return fn()

    def head(self) -> Head:
        return Head(self._query(self._top), self.read)

    def count(self) -> int:
        return self.head().next_seq

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEvent]:
        return self._rows(start, stop, locked=True)

    # -------------------------------------------------------------- patch index
    def patch_record(self, patch_hash: bytes) -> PatchRecord | None:
        rows = self._query(lambda: self._fast["record"].run((patch_hash,)))
        if not rows:
            return None
        return record_of({_int(kind): _int(seq) for kind, seq in rows})

    def find_patches(self, prefix_hex: str) -> list[bytes]:
        lo, hi = hash_range(prefix_hex)
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
        # Called by ``after_commit`` once the commit is in, outside any append lock:
        # writers arrive in any order, and a checkpoint of a larger tree already there stays.
        with self._turn, _flocked(self):
            rewrite_unless_newer(self.checkpoint_path, note, durable=self.durable, lock=False)

    def get_checkpoint(self) -> bytes | None:
        with self._turn, _flocked(self):
            return read_note(self.checkpoint_path)

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
                index: Iterator[IndexRow],
                source: Callable[[int, int], Iterator[StoredEvent]] | None = None) -> int:
        """Bulk-load another backend's rows in one transaction (``COPY``), refusing unless
        the ledger is empty; the append lock is held throughout so no writer can slip in.
        ``source`` reads the ledger being copied: a target holding nothing but its first
        events (what a migration killed after its copy committed leaves) is emptied and
        filled again, in the same transaction. Returns the number of events copied."""
        with self._turn, self._errors():
            db, q = self._db, self._q
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                row = db.execute(q["emptiness"]).fetchone()
                if row is not None and any(row):
                    if source is None or not self._holds_a_prefix_of(source):
                        raise LedgerUnavailable(
                            f"the ledger {self.url.ledger!r} at {self.url.public} is not "
                            "empty", "migrate into an empty database or another "
                            "?ledger=NAME", kind="usage")
                    db.execute(q["truncate"])
                # A copy may take longer than one ``timeout``: the bound is on a pause
                # (no row sent for that long), not on the whole COPY.
                db.execute("SET LOCAL statement_timeout = 0")
                n = 0
                with db.cursor() as cur:
                    with cur.copy(q["copy_events"]) as copy:
                        for e in events:
                            copy.write_row((e.seq, e.body, e.sig))
                            n += 1
                            if not n % 1000:
                                self._deadline.extend()
                    with cur.copy(q["copy_index"]) as copy:
                        for i, r in enumerate(index):
                            copy.write_row(r)
                            if not i % 1000:
                                self._deadline.extend()
                    if snapshots:
                        cur.executemany(q["put_snapshot"],
                                        [(s.seq, s.data, s.sig) for s in snapshots])
            return n


    def _holds_a_prefix_of(self, source: Callable[[int, int], Iterator[StoredEvent]]
                           ) -> bool:
        """Every event here, from seq 0 without a gap, is the same (body and signature) as
        ``source``'s at its seq: replacing them loses nothing (under the append lock)."""
        [(top,)] = self._fast["top"].run(())
        if top is None:  # no event: only snapshots or index rows, nothing to lose
            return True
        n = _int(top) + 1
        ours = self._rows(0, n)
        theirs = source(0, n)
        for seq in range(n):
            mine, other = next(ours, None), next(theirs, None)
            if (mine is None or other is None or mine.seq != seq or other.seq != seq
                    or (mine.body, mine.sig) != (other.body, other.sig)):
                return False
        return True

    def discard(self) -> None:
        """Empty this ledger (a migration whose copy did not verify)."""
        with self._turn, self._errors(), self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            self._db.execute(self._q["truncate"])


def _statements(db: psycopg.Connection[Any], ledger: str) -> dict[str, str]:
    s = sql.Identifier(ledger)

    def q(text: str) -> str:
        return sql.SQL(text).format(s=s).as_string(db)

    return {
        "signature": q("{s}.append_events(bigint, bigint, bytea[], bytea[], bytea[], "
                       "smallint[], bigint[], bytea[])"),
        "insert": q("INSERT INTO {s}.events (seq, body, sig) VALUES (%s, %s, %s)"),
        "index": q("INSERT INTO {s}.patch_log (hash, kind, seq) VALUES (%s, %s, %s) "
                   "ON CONFLICT DO NOTHING"),
        "rows": q("SELECT seq, body, sig FROM {s}.events WHERE seq >= %s ORDER BY seq "
                  "LIMIT %s"),
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


def _fast_statements(db: psycopg.Connection[Any], ledger: str) -> dict[str, wire.Statement]:
    """The statements of every submit, on libpq directly (``wire``)."""
    s = sql.Identifier(ledger).as_string(db)
    bytea_array, int2_array, int8_array = 1001, 1005, 1016
    return {
        "append": wire.Statement(
            db, "append", f"SELECT * FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8)",
            (wire.INT8, wire.INT8, bytea_array, bytea_array, bytea_array, int2_array,
             int8_array, bytea_array)),
        "top": wire.Statement(db, "top", f"SELECT max(seq) FROM {s}.events", ()),
        "record": wire.Statement(db, "record", f"SELECT kind::bigint, max(seq) FROM "
                                 f"{s}.patch_log WHERE hash = $1 GROUP BY kind",
                                 (wire.BYTEA,)),
    }


def _int(value: bytes | None) -> int:
    """A binary ``bigint`` the server returned; ``NULL`` where none may be is damage."""
    if value is None or len(value) != 8:
        raise LedgerUnavailable("the ledger's server returned a malformed number",
                                kind="integrity")
    return int.from_bytes(value, "big", signed=True)


#: Server-side bounds set to the URL's ``timeout`` on every session.
_SERVER_TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
#: libpq's TCP keepalives (seconds): an idle session (``ouro serve`` between requests)
#: whose server or network vanished is noticed within ``idle + interval * count``.
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
               "keepalives_count": "3"}


def _connect(url: LedgerURL) -> psycopg.Connection[Any]:
    """A session whose every wait is bounded (docs/postgresql.md, "Timeouts"): libpq's
    ``connect_timeout`` (default 10 s), TCP keepalives and ``tcp_user_timeout`` (unless
    the URL sets them), and, server-side, ``statement_timeout``, ``lock_timeout`` and
    ``idle_in_transaction_session_timeout`` of the URL's ``timeout``; the client-side
    bound on a server that does not answer at all is the backend's ``Deadline``."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url.conninfo)
    ms = url.timeout * 1000
    tcp: dict[str, Any] = {**_KEEPALIVES, "tcp_user_timeout": str(ms)}
    extra = {k: v for k, v in tcp.items() if k not in given}
    # Set after connecting, not as a startup ``options`` (a pooler such as PgBouncer
    # refuses that parameter); a setting the URL's own ``options`` gives is left alone.
    options = str(given.get("options") or "")
    server = [name for name in _SERVER_TIMEOUTS
              if not re.search(rf"(-c\s*|--){name}\s*=", options)]
    try:
        # autocommit: the backend says BEGIN/COMMIT itself, so a read is one statement,
        # never an open transaction that would hold back vacuum.
        db = psycopg.connect(url.conninfo, autocommit=True, prepare_threshold=0,
                             application_name="ouroboros",
                             connect_timeout=_connect_timeout(url), **extra)
    except psycopg.Error as e:
        raise _unavailable(url, e) from e
    if server:
        deadline = Deadline(url.timeout)
        try:
            with deadline.armed(db):
                db.execute("SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(server)),
                           [x for name in server for x in (name, str(ms))], prepare=False)
        except psycopg.Error as e:
            db.close()
            raise _unavailable(url, e, cut=deadline.fired) from e
    return db


def _connect_timeout(url: LedgerURL) -> int:
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url.conninfo).get("connect_timeout")
    return int(given) if given is not None and str(given).isdigit() else 10


def _unavailable(url: LedgerURL, e: psycopg.Error, *, cut: bool = False
                 ) -> LedgerUnavailable:
    """``e`` as a one-line error saying what to check; ``cut``: the client-side deadline
    ended the call (the server did not answer in time)."""
    text = _first_line(e)
    if cut or (isinstance(e, psycopg.errors.QueryCanceled) and "timeout" in text) or (
            isinstance(e, psycopg.errors.LockNotAvailable) and "timeout" in text):
        return _timed_out(url, "did not answer" if cut else
                          "could not take a lock" if isinstance(
                              e, psycopg.errors.LockNotAvailable)
                          else "did not finish a statement")
    if "password authentication failed" in text or "no password supplied" in text:
        hint = ("set PGPASSWORD, a ~/.pgpass entry, or $OURO_LEDGER_URL with the password; "
                "the workspace stores the URL without it")
    elif text.startswith("connection is bad: invalid "):
        # libpq refused a parameter's value before trying any server (sslmode=bogus,
        # port=99999): the URL is wrong, not the server
        return LedgerUnavailable(f"malformed ledger URL {url.public}: {text[19:]}",
                                 "fix the URL's parameters (libpq's connection settings)",
                                 kind="usage")
    elif isinstance(e, psycopg.errors.InsufficientPrivilege):
        from psycopg.conninfo import conninfo_to_dict

        role = conninfo_to_dict(url.conninfo).get("user") or "the URL's user"
        hint = (f"the role {role} may not do this in the ledger's schema: writers need "
                "USAGE on it, SELECT and INSERT on its tables and EXECUTE on append_events "
                "(readers: USAGE and SELECT)")
    elif isinstance(e, psycopg.OperationalError):
        hint = "is the PostgreSQL server running and reachable? check the URL's host and port"
    else:
        hint = "check the ledger URL and the server's logs"
    return LedgerUnavailable(f"the PostgreSQL ledger at {url.public} cannot be used: {text}",
                             hint)


class _Turn:
    """This ledger's in-process lock, taken for one call: a thread that cannot get it
    within the URL's ``timeout`` (the calls ahead of it wait on a server that does not
    answer) fails at once instead of waiting its turn to wait again, so the N-th of N
    queued calls fails after one bound, not N."""

    __slots__ = ("lock", "url")

    def __init__(self, lock: threading.Lock, url: LedgerURL) -> None:
        self.lock = lock
        self.url = url

    def __enter__(self) -> None:
        if not self.lock.acquire(timeout=self.url.timeout):
            raise _timed_out(self.url, "did not answer the calls ahead of this one")

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _timed_out(url: LedgerURL, what: str = "did not answer") -> LedgerUnavailable:
    return LedgerUnavailable(
        f"the PostgreSQL ledger at {url.public} {what} within {url.timeout} s",
        "is the server stopped, overloaded, or another session holding the ledger's "
        "locks? the URL's timeout=SECONDS sets this bound (docs/postgresql.md)")


@contextmanager
def _flocked(ledger: PostgresLedger) -> Iterator[None]:
    """The local checkpoint's file lock, waited for at most ``OURO_LOCK_TIMEOUT``."""
    if fcntl is None:
        yield
        return
    fh = ledger._file_lock
    try:
        lock_bounded(fh.fileno(), fcntl.LOCK_EX, ledger.checkpoint_path + ".lock")
    except LockTimeout:
        # the given-up wait may still take and drop the lock on this open file
        ledger._file_lock = open(ledger.checkpoint_path + ".lock", "a+b",  # noqa: SIM115
                                 opener=regular_opener)
        fh.close()
        raise
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
