"""Storage: the ledger backends and the content-addressed blob store.

The kernel depends on the small interfaces here; backends are chosen by configuration
(SQLite is the embedded default).
"""

from ouroboros.storage.blobs import BlobStore
from ouroboros.storage.ledger import Head, LedgerBackend, RetryAppend, Snapshot, StoredEvent
from ouroboros.storage.sqlite import SQLiteLedger

__all__ = ["BlobStore", "Head", "LedgerBackend", "RetryAppend", "SQLiteLedger", "Snapshot",
           "StoredEvent"]
