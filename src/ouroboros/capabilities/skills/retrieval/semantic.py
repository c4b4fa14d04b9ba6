"""The semantic stage: MiniLM (minilm.py) over every live tool, on every full search.

It does two things in the pipeline (index.py):
- its ranking of all tools (cosine less the hub penalty, hubs.py) joins the static and BM25
  rankings in the first stage's weighted fusion: tools whose words miss the query's reach
  the candidates (tuning half: the right tool among the top 50 for 94 % of the queries
  instead of 90 %);
- its score of each of the top candidates, standardised over them, is added to their
  fused reciprocal ranks, beside e5's where the first stage is unsure.

MiniLM vectors of tools are made when tools are added (batched, about 3 ms a tool) and kept
in `<index>/minilm/`, a `FileVectorStore` of their own, one row per tool version, tagged
with the model id; a row missing there (an index built before this stage, or written by a
process without the model) is made on the next search that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..embedding import Embedder, EmbeddingError, Matrix
from .hubs import HUB_WEIGHT, hub_scores, probe_matrix
from .linevectors import FILE_ERRORS, LineVectors
from .vectors import IndexEntry

# its files failing, or a model that fails mid-call: the stage goes off, the search goes on
_STAGE_ERRORS = (EmbeddingError, *FILE_ERRORS)


def _default_minilm() -> Embedder:
    from .minilm import default_minilm  # onnxruntime is imported only when a search needs it
    return default_minilm()


class SemanticStage(LineVectors):
    """MiniLM scores of every live tool for a query, with the tools' vectors on disk."""

    what = "semantic stage"

    def __init__(self, root: Path, embedder: Embedder | None = None) -> None:
        super().__init__(root, embedder, _default_minilm)
        self._view: tuple[int, Matrix, Matrix] | None = None  # generation, vectors, penalty
        self._probes: Matrix | None = None

    @property
    def available(self) -> bool:
        """Whether the model loads. If it cannot (weights not installed, a build that fails
        its reference check), searches go on without this stage, and say so once in the
        log; `error` keeps the reason. A failure of its files instead (a full disk, a
        directory planted at one) turns it off until `RETRY_SECONDS` have passed."""
        if not self.usable():
            return False
        try:
            self._embedder = self.embedder
        except EmbeddingError as e:
            self._off(e)
            return False
        return True

    def _off(self, e: Exception) -> None:
        # a model that cannot load or run stays off; the stage's files are tried again
        self.switch_off(e, for_good=isinstance(e, EmbeddingError))

    def _forget(self) -> None:
        self._view = None

    def ensure(self, entries: Sequence[IndexEntry]) -> None:
        """Embed the entries that have no vector of their current version yet."""
        try:
            with self._lock:
                self._ensure_locked(entries)
        except _STAGE_ERRORS as e:
            self._off(e)

    def scores(self, query_vector: Matrix, generation: int,
               entries: Sequence[IndexEntry]) -> Matrix | None:
        """Cosine of every entry to the query, less its hub penalty, in `entries`' order
        (`generation`: the main store's state those entries are, for the cached matrix);
        None if the stage's files cannot be used (it is then off, and says why once)."""
        try:
            vectors, penalty = self._matrix(generation, entries)
        except _STAGE_ERRORS as e:
            self._off(e)
            return None
        out: Matrix = (vectors @ query_vector - penalty).astype(np.float32, copy=False)
        return out

    def embed_query(self, query: str) -> Matrix:
        return self.embedder.embed_query(query)

    def _matrix(self, generation: int, entries: Sequence[IndexEntry]) -> tuple[Matrix, Matrix]:
        with self._lock:
            view = self._view
            if view is not None and view[0] == generation and len(view[1]) == len(entries):
                return view[1], view[2]
            self._ensure_locked(entries)
            _, rows, matrix = self.store.view()
            where = {e.tool_id: i for i, e in enumerate(rows)}
            vectors: Matrix = matrix[[where[e.tool_id] for e in entries]] if entries else \
                np.zeros((0, self.embedder.dim), dtype=np.float32)
            if self._probes is None:
                self._probes = probe_matrix(self.embedder.embed_query)
            penalty: Matrix = (HUB_WEIGHT * hub_scores(vectors, self._probes)).astype(np.float32)
            if view is None or view[0] <= generation:
                self._view = (generation, vectors, penalty)
            return vectors, penalty
