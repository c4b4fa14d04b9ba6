"""The PostgreSQL ledger backend (psycopg 3): for many writers on many hosts.

Import ``PostgresLedger`` from here only where a workspace names a PostgreSQL ledger:
psycopg is loaded on that path alone, so SQLite workspaces start as fast as before.
"""

from ouroboros.storage.postgres.ledger import PostgresLedger, lock_key
from ouroboros.storage.postgres.url import LedgerURL, is_postgres_url, parse

__all__ = ["LedgerURL", "PostgresLedger", "is_postgres_url", "lock_key", "parse"]
