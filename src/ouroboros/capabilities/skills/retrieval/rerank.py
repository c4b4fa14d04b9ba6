"""The second stage: the e5 transformer re-ranks the first stage's candidates.

The static model and BM25 are fast but miss meaning a transformer gets ("70 degrees
fahrenheit" → a unit converter that says "temperature (C, F, K)"), and keyword stuffing
fools them. The top `RERANK_DEPTH` candidates of the first stage are scored by e5 cosine
(less a hub penalty, hubs.py) and that score, standardised over the candidates, is added
to their first-stage reciprocal ranks (index.py). Embedding
the query costs 15-40 ms on this machine (cached per query text); mode "fast" skips it.

e5 vectors of tools are made lazily, for the candidates that need them, and kept in
`<index>/rerank/` (a `FileVectorStore` of their own, one row per tool version), so adding a
thousand tools never waits for the transformer; a cold candidate costs one passage
embedding once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..embedding import Embedder, Matrix, default_embedder
from .hubs import HUB_WEIGHT, hub_scores
from .linevectors import FILE_ERRORS, LineVectors
from .vectors import IndexEntry

RERANK_DEPTH = 50  # tuning half: recall@5 +0.3 (full) / +0.4 (deep) points over 30


class Reranker(LineVectors):
    """e5 cosine over candidate tools, with the tools' e5 vectors cached on disk."""

    what = "e5 re-ranker"

    def __init__(self, root: Path, embedder: Embedder | None = None) -> None:
        super().__init__(root, embedder, default_embedder)

    def vectors(self, entries: Sequence[IndexEntry]) -> Matrix:
        """e5 passage vectors of the entries' display lines (computed once per version)."""
        with self._lock:
            self._ensure_locked(entries)
            return np.stack([self.store.vector(e.tool_id) for e in entries])

    def seed(self, items: Sequence[tuple[str, str, str]], vectors: Matrix) -> None:
        """Store e5 vectors computed elsewhere (`(tool_id, fingerprint, display line)`)."""
        self.store.append(items, vectors, self.embedder.model_id)

    def scores(self, query_vector: Matrix, entries: Sequence[IndexEntry], probes: Matrix
               ) -> Matrix | None:
        """e5 cosine of each entry to the query, less its hub penalty; None if its files
        cannot be used (a directory planted at one, a full disk): it is then off, says why
        once, and is tried again after `RETRY_SECONDS`."""
        try:
            vectors = self.vectors(entries)
        except FILE_ERRORS as e:
            self.switch_off(e, for_good=False)
            return None
        out: Matrix = (vectors @ query_vector - HUB_WEIGHT * hub_scores(vectors, probes)
                       ).astype(np.float32)
        return out
