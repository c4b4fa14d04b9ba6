"""The skill index's vectors in the ledger's PostgreSQL schema.

A workspace whose ledger is in PostgreSQL keeps its tool embeddings there too
(``{ledger}.skill_vectors``), so every host that opens the workspace searches the same
rows and none re-embeds what another already did. The table is what the file store's
``vectors.f32`` + ``entries.jsonl`` are: rows numbered densely from 0 in the order they
were appended (a newer row of a tool supersedes the older), plus one ``meta`` row with the
model, the dimension and an ``epoch`` that changes whenever rows are renumbered
(compaction) or dropped (a re-embedding), so a reader knows to load everything again
instead of only the rows past the ones it has.

Writers take a transaction-level advisory lock (its key derived from the schema), so two
hosts appending at once get consecutive row numbers and never mix two models. Vectors are
float32 little-endian bytes; the numbers are the caller's (``retrieval/vectors.py``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import pq, sql

from ouroboros.storage.ledger import LedgerUnavailable
from ouroboros.storage.postgres.deadline import Deadline
from ouroboros.storage.postgres.ledger import _connect, _timed_out, _unavailable
from ouroboros.storage.postgres.url import LedgerURL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.skill_vectors (
    row         bigint PRIMARY KEY,
    tool_id     text NOT NULL,
    fingerprint text NOT NULL,
    text        text NOT NULL,
    model_id    text NOT NULL,
    vec         bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.skill_vector_meta (
    id       int PRIMARY KEY CHECK (id = 1),
    model_id text,
    dim      int,
    epoch    bigint NOT NULL
);
INSERT INTO {s}.skill_vector_meta (id, model_id, dim, epoch) VALUES (1, NULL, NULL, 0)
    ON CONFLICT (id) DO NOTHING
"""

P = ParamSpec("P")
R = TypeVar("R")

#: (row, tool_id, fingerprint, text, model_id, vector bytes)
Row = tuple[int, str, str, str, str, bytes]


class VectorModelMismatch(ValueError):
    """The table holds vectors of another model (the caller reindexes)."""


def vectors_lock_key(ledger: str) -> int:
    digest = hashlib.sha256(b"ouroboros-vectors\0" + ledger.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _serial(method: Callable[Concatenate[PostgresVectorRows, P], R]
            ) -> Callable[Concatenate[PostgresVectorRows, P], R]:
    """One statement or transaction on the connection at a time (threads share it); a
    session the server lost (restart, terminated) is replaced first, so a long-lived
    process recovers on the call after the one that met it. Each call is bounded by the
    URL's ``timeout`` (``Deadline``): a server that stops answering is an error, not a
    wait for ever."""
    def wrapper(self: PostgresVectorRows, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            if self._db.closed or self._db.pgconn.status != pq.ConnStatus.OK:
                self._db.close()
                self._db = _connect(self.url)
            try:
                with self._deadline.armed(self._db):
                    return method(self, *args, **kwargs)
            except LedgerUnavailable as e:
                if self._deadline.fired:
                    raise _timed_out(self.url) from e
                raise
    wrapper.__doc__ = method.__doc__
    return wrapper


class PostgresVectorRows:
    """Rows of the skill index in one ledger schema (see the module docstring).

    Raises (every method):
        LedgerUnavailable: the server cannot be reached or refused (says what to check).
    """

    def __init__(self, url: LedgerURL) -> None:
        self.url = url
        self._key = vectors_lock_key(url.ledger)
        self._lock = threading.Lock()  # one statement or transaction at a time
        self._deadline = Deadline(url.timeout)
        self._db = _connect(url)
        schema = sql.Identifier(url.ledger)
        self._t = {name: sql.SQL("{}.{}").format(schema, sql.Identifier(name))
                   for name in ("skill_vectors", "skill_vector_meta")}
        try:
            with self._deadline.armed(self._db), self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(sql.SQL(statement).format(s=schema), prepare=False)
        except psycopg.Error as e:
            self._db.close()
            raise _unavailable(url, e, cut=self._deadline.fired) from e

    def close(self) -> None:
        self._db.close()

    @_serial
    def state(self) -> tuple[int, int, str | None, int]:
        """(epoch, rows, model id, dimension): one round trip (rows are numbered densely,
        so the count is the primary key's maximum + 1: an index lookup, not a scan)."""
        try:
            row = self._db.execute(sql.SQL(
                "SELECT m.epoch, (SELECT coalesce(max(row) + 1, 0) FROM {v}), m.model_id, "
                "coalesce(m.dim, 0) "
                "FROM {m} m WHERE m.id = 1").format(
                    v=self._t["skill_vectors"], m=self._t["skill_vector_meta"])).fetchone()
        except psycopg.Error as e:
            raise _unavailable(self.url, e) from e
        assert row is not None  # the meta row is made with the table
        return int(row[0]), int(row[1]), row[2], int(row[3])

    @_serial
    def rows(self, start: int = 0) -> tuple[int, str | None, int, list[Row]]:
        """The epoch, model id, dimension and every row numbered ``start`` or later, in
        order, all of one snapshot."""
        try:
            with self._db.transaction():
                self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                meta = self._db.execute(sql.SQL(
                    "SELECT epoch, model_id, coalesce(dim, 0) FROM {} WHERE id = 1").format(
                        self._t["skill_vector_meta"])).fetchone()
                found = self._db.execute(sql.SQL(
                    "SELECT row, tool_id, fingerprint, text, model_id, vec FROM {} "
                    "WHERE row >= %s ORDER BY row").format(self._t["skill_vectors"]),
                    (start,)).fetchall()
        except psycopg.Error as e:
            raise _unavailable(self.url, e) from e
        assert meta is not None
        return (int(meta[0]), meta[1], int(meta[2]),
                [(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5])) for r in found])

    @_serial
    def append(self, items: Sequence[tuple[str, str, str]], vectors: Sequence[bytes],
               model_id: str, dim: int) -> None:
        """Append ``(tool_id, fingerprint, text)`` rows after every row there is.

        Raises:
            VectorModelMismatch: the table holds another model's or dimension's vectors.
        """
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                meta = self._db.execute(sql.SQL(
                    "SELECT model_id, dim FROM {} WHERE id = 1").format(
                        self._t["skill_vector_meta"])).fetchone()
                assert meta is not None
                if meta[0] is None:
                    self._db.execute(sql.SQL(
                        "UPDATE {} SET model_id = %s, dim = %s WHERE id = 1").format(
                            self._t["skill_vector_meta"]), (model_id, dim))
                elif (meta[0], meta[1]) != (model_id, dim):
                    raise VectorModelMismatch(
                        f"the index in {self.url.public} holds vectors from {meta[0]} "
                        f"(dimension {meta[1]}), not {model_id} (dimension {dim})")
                top = self._db.execute(sql.SQL("SELECT coalesce(max(row) + 1, 0) FROM {}")
                                       .format(self._t["skill_vectors"])).fetchone()
                first = int(top[0]) if top is not None else 0
                with self._db.cursor() as cur:
                    cur.executemany(sql.SQL(
                        "INSERT INTO {} (row, tool_id, fingerprint, text, model_id, vec) "
                        "VALUES (%s, %s, %s, %s, %s, %s)").format(self._t["skill_vectors"]),
                        [(first + i, tool_id, fp, text, model_id, vec)
                         for i, ((tool_id, fp, text), vec) in enumerate(
                            zip(items, vectors, strict=True))])
        except psycopg.Error as e:
            raise _unavailable(self.url, e) from e

    @_serial
    def rewrite(self, keep: Sequence[int] | None) -> None:
        """Keep only rows ``keep`` (renumbered 0.. in that order; None: drop every row and
        forget the model), as a new epoch."""
        v, m = self._t["skill_vectors"], self._t["skill_vector_meta"]
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                if keep is None:
                    self._db.execute(sql.SQL("DELETE FROM {}").format(v))
                    self._db.execute(sql.SQL(
                        "UPDATE {} SET model_id = NULL, dim = NULL, epoch = epoch + 1 "
                        "WHERE id = 1").format(m))
                    return
                self._db.execute(sql.SQL(
                    "CREATE TEMP TABLE ouro_keep (old bigint, new bigint) ON COMMIT DROP"))
                with self._db.cursor() as cur:
                    cur.executemany("INSERT INTO ouro_keep VALUES (%s, %s)",
                                    [(old, new) for new, old in enumerate(keep)])
                self._db.execute(sql.SQL(
                    "DELETE FROM {} WHERE row NOT IN (SELECT old FROM ouro_keep)").format(v))
                # two steps, so no new number meets an old one still in the table
                self._db.execute(sql.SQL("UPDATE {} SET row = -1 - row").format(v))
                self._db.execute(sql.SQL(
                    "UPDATE {} t SET row = k.new FROM ouro_keep k WHERE t.row = -1 - k.old")
                    .format(v))
                self._db.execute(sql.SQL("UPDATE {} SET epoch = epoch + 1 WHERE id = 1")
                                 .format(m))
        except psycopg.Error as e:
            raise _unavailable(self.url, e) from e

    def __enter__(self) -> PostgresVectorRows:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
