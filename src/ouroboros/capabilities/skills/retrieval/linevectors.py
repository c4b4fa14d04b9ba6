"""A model's vectors of tools' display lines, kept on disk: one row per tool version.

The e5 re-ranker (rerank.py) and the MiniLM stage (semantic.py) each keep one, in a
`FileVectorStore` of its own under the index; it is only a cache, so another model's rows
are dropped rather than mixed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..embedding import Embedder
from .documents import display_line
from .vectors import FileVectorStore, IndexEntry


class LineVectors:
    """Display-line vectors of tools by one model (`make_embedder` is called on first use,
    unless an embedder is given)."""

    def __init__(self, root: Path, embedder: Embedder | None,
                 make_embedder: Callable[[], Embedder]) -> None:
        self.root = Path(root)
        self._embedder = embedder
        self._make_embedder = make_embedder
        self._store: FileVectorStore | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._make_embedder()
        return self._embedder

    @property
    def store(self) -> FileVectorStore:
        if self._store is None:
            self._store = FileVectorStore(self.root)
            if self._store.model_id not in (None, self.embedder.model_id):
                self._store.clear()  # another model's vectors: they are only a cache
        return self._store

    def _ensure_locked(self, entries: Sequence[IndexEntry]) -> None:
        """Embed the entries whose current version has no vector yet (lock held)."""
        store = self.store
        store.refresh()
        missing = []
        for e in entries:
            have = store.get(e.tool_id)
            if have is None or have.fingerprint != e.fingerprint or \
                    have.text != display_line(e.text):
                missing.append(e)
        if missing:
            texts = [display_line(e.text) for e in missing]
            store.append([(e.tool_id, e.fingerprint, t)
                          for e, t in zip(missing, texts, strict=True)],
                         self.embedder.embed_documents(texts), self.embedder.model_id)
