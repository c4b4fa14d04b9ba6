"""Ranking primitives shared by the index and the benchmark: BM25 tokens, RRF, top-k."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import bm25s
import numpy as np
import Stemmer

RRF_K = 60  # the constant from Cormack et al.; not tuned on our evaluation set

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """BM25 tokens: lower-cased words, English stop words removed, Snowball-stemmed."""
    out = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )
    return [list(t) for t in out]


def rrf(rankings: Iterable[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking adds 1/(k + rank) to the items it lists."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def top_indices(scores: np.ndarray[Any, Any], n: int) -> list[int]:
    """Indices of the n largest scores, best first, in O(len) rather than a full sort."""
    if n <= 0 or scores.size == 0:
        return []
    n = min(n, scores.size)
    part = np.argpartition(-scores, n - 1)[:n]
    return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]
