"""Both ledger backends from a test's side: run raw SQL on a workspace's ledger (what a
database writer can do, whichever engine holds it) and open its backend directly."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ouroboros.kernel.workspace import Workspace
from ouroboros.storage.backends import open_ledger
from ouroboros.storage.ledger import LedgerBackend


def ledger_url(home: Path) -> str | None:
    return Workspace.load(home).ledger_url


def backend_of(home: Path) -> LedgerBackend:
    """The workspace's backend, opened directly (no kernel checks)."""
    return open_ledger(home, ledger_url(home))


def raw_sql(home: Path, statement: str, *args: Any) -> list[Any]:
    """Run ``statement`` (``?`` placeholders, table names unqualified) on the ledger's
    database and commit: on SQLite the file, on PostgreSQL the ledger's schema."""
    url = ledger_url(home)
    if url is None:
        con = sqlite3.connect(home / "ledger.db")
        try:
            rows = con.execute(statement, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()
    import psycopg
    from psycopg import sql

    from ouroboros.storage.postgres.url import for_workspace

    parsed = for_workspace(url)
    with psycopg.connect(parsed.conninfo, autocommit=True) as db:
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(parsed.ledger)))
        cur = db.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def race(target: Callable[..., None], each: Sequence[tuple[Any, ...]],
         timeout: float = 300) -> None:
    """Run ``target(*args, start)`` in a spawned process per ``args`` in ``each``, all
    released at once by the ``start`` event they wait on; every one must exit 0."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, start)) for args in each]
    for p in procs:
        p.start()
    start.set()
    for p, args in zip(procs, each, strict=True):
        p.join(timeout)
        assert p.exitcode == 0, f"{target.__name__}{args!r} exited with {p.exitcode}"
