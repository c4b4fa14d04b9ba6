"""`VectorStore` on PostgreSQL: the skill index's rows beside a PostgreSQL ledger.

The same contract and ranking as `FileVectorStore` (one matrix-vector product over the
live rows, or the ANN index above it past its threshold); the rows live in the ledger's
schema (``storage/postgres/vectors.py``), so every host that opens the workspace searches
the same vectors. A reader keeps the rows in memory and asks the server for two numbers
per `refresh` (epoch, row count): new rows are fetched alone, a compaction or re-embedding
(a new epoch) loads everything again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ouroboros.storage.postgres.url import LedgerURL

from ..embedding import Matrix
from .vectors import IndexEntry, ModelMismatch, _Rows, _RowsReader, checked_rows


class PostgresVectorStore(_RowsReader):
    """Rows of the skill index in the workspace's PostgreSQL ledger schema."""

    def __init__(self, url: LedgerURL) -> None:
        from ouroboros.storage.postgres.vectors import PostgresVectorRows

        self.url = url
        self._db = PostgresVectorRows(url)
        self._mutex = threading.RLock()
        self._generations = 0
        self._epoch = -1
        with self._mutex:
            self._rows = self._load(None)

    def close(self) -> None:
        self._db.close()

    def refresh(self) -> bool:
        """Pick up rows another process or host appended, or a compaction."""
        epoch, count, _, _ = self._db.state()
        if (epoch, count) == (self._epoch, len(self._rows.entries)):
            return False
        with self._mutex:
            self._rows = self._load(self._rows)
            return True

    # -- writing ------------------------------------------------------------------------
    def append(self, items: Sequence[tuple[str, str, str]], vectors: Matrix,
               model_id: str) -> None:
        """Append `(tool_id, fingerprint, text)` rows with their vectors (one model only)."""
        from ouroboros.storage.postgres.vectors import VectorModelMismatch

        checked = checked_rows(items, vectors)
        if checked is None:
            return
        vectors = checked
        with self._mutex:
            try:
                self._db.append(items, [bytes(v.tobytes()) for v in vectors], model_id,
                                int(vectors.shape[1]))
            except VectorModelMismatch as e:
                raise ModelMismatch(f"{e}; rebuild it with reindex()") from None
            self._rows = self._load(self._rows)
            rows = self._rows
            if len(rows.entries) > 2 * len(rows.live) + 64:
                self._compact_locked()

    def compact(self) -> None:
        """Keep only live rows (one transaction; readers reload on the new epoch)."""
        with self._mutex:
            self._rows = self._load(self._rows)
            self._compact_locked()

    def clear(self) -> None:
        """Forget every row (before a re-embedding with another model)."""
        with self._mutex:
            self._db.rewrite(None)
            self._rows = self._load(None)

    # -- internals ----------------------------------------------------------------------
    def _compact_locked(self) -> None:
        self._db.rewrite(sorted(self._rows.live.values()))
        self._rows = self._load(None)

    def _load(self, have: _Rows | None) -> _Rows:
        """The rows now: only those past ``have`` while its epoch is still current."""
        start = len(have.entries) if have is not None else 0
        epoch, model_id, dim, found = self._db.rows(start)
        if have is None or epoch != self._epoch:
            if start:
                epoch, model_id, dim, found = self._db.rows(0)
            entries: list[IndexEntry] = []
            live: dict[str, int] = {}
            base = np.zeros((0, dim), dtype=np.float32)
        else:
            entries, live, base = list(have.entries), dict(have.live), have.vectors
        new = []
        for row, tool_id, fingerprint, text, row_model, vec in found:
            entries.append(IndexEntry(row, tool_id, fingerprint, text, row_model))
            live.pop(tool_id, None)  # re-insert so order follows the newest row
            live[tool_id] = row
            new.append(np.frombuffer(vec, dtype="<f4"))
        if new:
            added = np.stack(new).astype(np.float32)
            vectors = np.concatenate([base, added]) if len(base) else added
        else:
            vectors = base
        self._epoch = epoch
        self._generations += 1
        return _Rows(entries, live, model_id, dim, vectors, 0, ((epoch, len(entries), 0),),
                     self._generations)
