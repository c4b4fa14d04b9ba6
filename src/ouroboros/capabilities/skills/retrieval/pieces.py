"""A SentencePiece-unigram tokenizer over a fixed piece vocabulary (pure Python).

The static embedding model (static.py) has one vector per piece of e5's own vocabulary, so
a text must be cut into those pieces the way SentencePiece would: each word, prefixed with
"▁", is split by the Viterbi path that maximises the sum of the pieces' log-probabilities.
A character no piece covers becomes the unknown piece (no vector, no weight). Words are
cut at most once each per process (an LRU cache): queries reuse a small vocabulary.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache

WORD_START = "\u2581"
UNKNOWN = -1
MAX_WORD_CHARS = 64  # Viterbi is O(len x longest piece); a longer "word" is cut


class PieceTokenizer:
    """Unigram tokenizer: `pieces[i]` has log-probability `scores[i]`."""

    def __init__(self, pieces: Sequence[str], scores: Sequence[float]) -> None:
        if len(pieces) != len(scores):
            raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
        self._index = {p: i for i, p in enumerate(pieces) if p}
        self._scores = [float(s) for s in scores]
        self._longest = max((len(p) for p in self._index), default=1)
        self._unknown_cost = min(self._scores, default=0.0) - 10.0
        self.word = lru_cache(maxsize=65536)(self._word)

    def __len__(self) -> int:
        return len(self._scores)

    def encode(self, text: str) -> list[int]:
        """Piece ids of a text; UNKNOWN (-1) where no piece covers a character."""
        out: list[int] = []
        for w in unicodedata.normalize("NFKC", text).split():
            out.extend(self.word(w[:MAX_WORD_CHARS]))
        return out

    def _word(self, word: str) -> tuple[int, ...]:
        s = WORD_START + word
        n = len(s)
        best = [float("-inf")] * (n + 1)
        back: list[tuple[int, int]] = [(0, UNKNOWN)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == float("-inf"):
                continue
            for j in range(i + 1, min(n, i + self._longest) + 1):
                idx = self._index.get(s[i:j])
                if idx is not None and best[i] + self._scores[idx] > best[j]:
                    best[j] = best[i] + self._scores[idx]
                    back[j] = (i, idx)
            if best[i] + self._unknown_cost > best[i + 1]:  # a character no piece covers
                best[i + 1] = best[i] + self._unknown_cost
                back[i + 1] = (i, UNKNOWN)
        ids: list[int] = []
        j = n
        while j > 0:
            i, idx = back[j]
            if not (idx == UNKNOWN and ids and ids[-1] == UNKNOWN):
                ids.append(idx)
            j = i
        ids.reverse()
        return tuple(ids)
