"""A model's vectors of tools' display lines, kept on disk: one row per tool version.

The e5 re-ranker (rerank.py) and the MiniLM stage (semantic.py) each keep one, in a
`FileVectorStore` of its own under the index; it is only a cache, so another model's rows
are dropped rather than mixed in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..embedding import Embedder
from .documents import display_line
from .vectors import FileVectorStore, IndexEntry, RetrievalError, discard_files

log = logging.getLogger(__name__)

#: After a failure of its files (a full disk, a directory planted where a file goes), a
#: cache is tried again this long after, so a long-running server gets the stage back
#: once the cause is mended; a model that cannot load stays off (retrying costs a rebuild).
RETRY_SECONDS = 60.0
_now = time.monotonic
#: What a cache's own files can raise (a directory or a dangling name planted among them,
#: a full disk, garbage in them): the cache goes off, the search goes on.
FILE_ERRORS = (RetrievalError, OSError, ValueError)


class LineVectors:
    """Display-line vectors of tools by one model (`make_embedder` is called on first use,
    unless an embedder is given)."""

    what = "vector cache"  # how the log names it

    def __init__(self, root: Path, embedder: Embedder | None,
                 make_embedder: Callable[[], Embedder]) -> None:
        self.root = Path(root)
        self._embedder = embedder
        self._make_embedder = make_embedder
        self._store: FileVectorStore | None = None
        self._lock = threading.Lock()
        self._unfit: tuple[int, set[str]] = (-1, set())  # store generation, tools with bad rows
        self.error: str | None = None  # why this cache is off, if it is
        self._retry_at: float | None = None  # when to try it again (None: not before restart)

    def switch_off(self, e: Exception, *, for_good: bool) -> None:
        """Stop using this cache and say why (once per failure); unless ``for_good``, try
        its files again after ``RETRY_SECONDS``."""
        self.error = str(e)
        self._retry_at = None if for_good else _now() + RETRY_SECONDS
        log.warning("%s off: %s", self.what, e)

    def usable(self) -> bool:
        """Whether to use it now: it is on, or it failed on its files long enough ago to try
        them again (re-opened from disk, as if new)."""
        if self.error is None:
            return True
        if self._retry_at is None or _now() < self._retry_at:
            return False
        log.info("%s: trying its files again after: %s", self.what, self.error)
        self.error, self._retry_at, self._store = None, None, None
        self._unfit = (-1, set())
        self._forget()
        return True

    def _forget(self) -> None:
        """Drop what a subclass derived from the files (called when they are re-opened)."""

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._make_embedder()
        return self._embedder

    @property
    def store(self) -> FileVectorStore:
        if self._store is None:
            try:
                store = FileVectorStore(self.root)
            except RetrievalError as e:  # a torn or altered manifest: only a cache, start again
                log.warning("dropping %s: %s", self.root, e)
                discard_files(self.root)
                store = FileVectorStore(self.root)
            if store.model_id not in (None, self.embedder.model_id) or \
                    (store.model_id is not None and store.dim != self.embedder.dim):
                store.clear()  # another model's vectors: they are only a cache
            self._store = store
        return self._store

    def _unfit_rows(self, store: FileVectorStore) -> set[str]:
        """Tools whose stored vector is not a finite unit vector (NaN, inf, zero, altered
        bytes): made again rather than ranked by (checked once per store state)."""
        generation, rows, matrix = store.view()
        if self._unfit[0] != generation:
            with np.errstate(invalid="ignore", over="ignore"):
                norms = np.linalg.norm(matrix, axis=1) if len(rows) else np.zeros(0)
                bad = ~(np.abs(norms - 1.0) < 1e-3)
            self._unfit = (generation, {rows[i].tool_id for i in np.flatnonzero(bad)})
        return self._unfit[1]

    def _ensure_locked(self, entries: Sequence[IndexEntry]) -> None:
        """Embed the entries whose current version has no vector yet (lock held)."""
        store = self.store
        store.refresh()
        unfit = self._unfit_rows(store)
        missing = []
        for e in entries:
            have = store.get(e.tool_id)
            if have is None or have.fingerprint != e.fingerprint or e.tool_id in unfit or \
                    have.text != display_line(e.text):
                missing.append(e)
        if missing:
            texts = [display_line(e.text) for e in missing]
            store.append([(e.tool_id, e.fingerprint, t)
                          for e, t in zip(missing, texts, strict=True)],
                         self.embedder.embed_documents(texts), self.embedder.model_id)

