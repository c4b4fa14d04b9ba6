"""Which ledger backend a workspace uses: chosen here, by its configuration, so the kernel
never knows (nor imports) the engine behind the ``LedgerBackend`` it is handed.

A workspace's ``ledger`` setting is absent (SQLite, ``ledger.db`` in the workspace) or a
password-less ``postgresql://`` URL. Either way the signed checkpoint stays in the
workspace (``ledger.checkpoint``), outside the database.
"""

from __future__ import annotations

from pathlib import Path

from ouroboros.storage.ledger import LedgerBackend, LedgerUnavailable

SQLITE_FILE = "ledger.db"
CHECKPOINT_FILE = "ledger.checkpoint"


def open_ledger(home: Path, url: str | None, *, durable: bool = False,
                create: bool = False) -> LedgerBackend:
    """The backend for the workspace at ``home`` whose ledger setting is ``url``
    (``None``: SQLite). ``create`` makes a PostgreSQL ledger's schema (init, migrate)."""
    if url is None or url == "sqlite":
        from ouroboros.storage.sqlite import SQLiteLedger

        return SQLiteLedger(home / SQLITE_FILE, durable=durable)
    if not isinstance(url, str) or "://" not in url:
        from ouroboros.storage.postgres.url import _redact

        shown = _redact(url) if isinstance(url, str) else url
        raise LedgerUnavailable(f"unknown ledger setting {shown!r}",
                                "use a postgresql:// URL, or leave it out for SQLite",
                                kind="usage")
    from ouroboros.storage.postgres import PostgresLedger
    from ouroboros.storage.postgres.url import for_workspace, parse

    parsed = parse(url) if create else for_workspace(url)
    return PostgresLedger(parsed, home / CHECKPOINT_FILE, durable=durable, create=create)
