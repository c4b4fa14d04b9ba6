"""The ledger's hot statements on libpq directly (psycopg's ``pgconn``), binary both ways.

Every governed submit makes three short round trips (the head, the patch index, the
append). Through psycopg's cursor layer a statement whose answer takes 1 ms cost
95–110 µs of client CPU here (Python running with cold caches after the wait), a blocking
``PQexecPrepared`` 15–30 µs (docs/postgresql.md). Only statements with fixed parameter
types go here; everything else stays on psycopg.

A failed statement raises the psycopg exception class of its SQLSTATE, so callers map
errors exactly as for psycopg's own calls.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors, pq

BOOL, BYTEA, INT8, INT2 = 16, 17, 20, 21
_ARRAY = struct.Struct("!iiIii")  # ndim, has-null flag, element type, length, lower bound
_LEN = struct.Struct("!i")
_I8 = struct.Struct("!q")
_I2 = struct.Struct("!h")
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


def int8(value: int) -> bytes:
    return _I8.pack(value)


def bytea_array(items: Sequence[bytes]) -> bytes:
    parts = [_ARRAY.pack(1, 0, BYTEA, len(items), 1)]
    for item in items:
        parts += (_LEN.pack(len(item)), item)
    return b"".join(parts)


def int8_array(items: Sequence[int]) -> bytes:
    return _ARRAY.pack(1, 0, INT8, len(items), 1) + b"".join(
        b"\0\0\0\x08" + _I8.pack(v) for v in items)


def int2_array(items: Sequence[int]) -> bytes:
    return _ARRAY.pack(1, 0, INT2, len(items), 1) + b"".join(
        b"\0\0\0\x02" + _I2.pack(v) for v in items)


def as_int8(value: bytes | None) -> int | None:
    return None if value is None else int(_I8.unpack(value)[0])


class Statement:
    """One prepared statement with binary parameters of fixed types and binary results,
    prepared on the connection at first use (and again after a reconnect never: the
    backend opens a new connection, so a new ``Statement``)."""

    def __init__(self, conn: psycopg.Connection[Any], name: str, query: str,
                 types: Sequence[int]) -> None:
        self._pgconn = conn.pgconn
        self._name = ("ouro_" + name).encode()
        self._query = query.encode()
        self._types = list(types)
        self._formats = [1] * len(types)
        self._prepared = False

    def run(self, params: Sequence[bytes | None]) -> list[tuple[bytes | None, ...]]:
        if not self._prepared:
            _check(self._pgconn.prepare(self._name, self._query, self._types), self._pgconn)
            self._prepared = True
        # libpq takes a null pointer for NULL; psycopg's stub types do not say so.
        res = self._pgconn.exec_prepared(self._name, params, self._formats, 1)  # type: ignore[arg-type]
        _check(res, self._pgconn)
        rows = [tuple(res.get_value(r, c) for c in range(res.nfields))
                for r in range(res.ntuples)]
        res.clear()
        return rows


def _check(res: pq.abc.PGresult, pgconn: pq.abc.PGconn) -> None:
    if res.status in _OK:
        return
    state = res.error_field(pq.DiagnosticField.SQLSTATE)
    message = (res.error_message or pgconn.error_message or b"the server did not answer")
    text = message.decode("utf-8", "replace").strip()
    # libpq's full message starts with its severity ("ERROR:  "); psycopg's own
    # exceptions carry the message alone, so callers word both alike
    text = re.sub(r"^(ERROR|FATAL|PANIC):\s+", "", text)
    res.clear()
    if state is None:  # no server error: the connection itself failed
        raise psycopg.OperationalError(text)
    raise errors.lookup(state.decode())(text)
