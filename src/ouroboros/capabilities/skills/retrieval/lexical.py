"""The BM25 side of retrieval, and the query rewriting that keeps it from guessing.

BM25 (`bm25s`, Lucene variant) runs over stop-worded, Snowball-stemmed tokens of each
tool's indexed document. Its statistics depend on the whole corpus, so the view is rebuilt
from cached tokens (no model, milliseconds) after the set of live tools changes; each
build is a new immutable view.

Query rewriting: a request is wrapped in words that say nothing about the tool ("can you
please help me find ...", "I need to ..."). Those words, and any word that occurs in more
than `GENERIC_DF` of the catalogue, are dropped from the BM25 query. When nothing is left,
BM25 abstains instead of ranking tools by a match on filler, and the fused ranking rests
on the dense side alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS

from ..ranking import tokenize, top_indices

GENERIC_DF = 0.25  # a word in a quarter of all tools tells them apart poorly
MIN_DOCS_FOR_DF = 20  # below this a document frequency says little

# Words of asking, not of the task: the NLTK English stop words (bm25s ships them; the
# index itself drops only Lucene's 33) and request phrasing. Stemmed, as `tokenize` returns.
FILLER = frozenset(tokenize([" ".join(sorted(STOPWORDS_EN_PLUS)) + (
    " please can could would will you help me need want wanted like looking look find get "
    "give show tell let know make use using used im i'm id i'd ive i've us our many much "
    "something anything someone somebody thing things way ways hey hi hello thanks thank "
    "possible able really also just kind sort tool tools app assist assistance provide "
    "information info details detail")])[0])


class LexicalIndex:
    """BM25 over one set of live documents; immutable once built, so a search holding it
    is never mixed with a newer catalogue. ``tokens`` is a cache (document text → tokens)
    shared between builds; the caller serialises builds that share it."""

    def __init__(self, texts: Sequence[str] = (),
                 tokens: dict[str, list[str]] | None = None) -> None:
        cache = {} if tokens is None else tokens
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        for text, toks in zip(missing, tokenize(missing), strict=True):
            cache[text] = toks
        corpus = [cache[t] for t in texts]
        self._corpus = corpus
        self._n = len(corpus)
        df: dict[str, int] = {}
        for toks in corpus:
            for tok in set(toks):
                df[tok] = df.get(tok, 0) + 1
        self._df = df
        if len(cache) > 4 * max(self._n, 256):  # forget texts of dead rows
            live = set(texts)
            for text in [t for t in cache if t not in live]:
                del cache[text]
        self._bm25: bm25s.BM25 | None = None
        if corpus:
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
            self._bm25 = bm25

    def rewrite(self, query: str) -> list[str]:
        """The BM25 terms of a query: no filler, nothing most tools contain."""
        terms = [t for t in tokenize([query])[0] if t not in FILLER]
        if self._n >= MIN_DOCS_FOR_DF:
            limit = GENERIC_DF * self._n
            terms = [t for t in terms if self._df.get(t, 0) <= limit]
        return terms

    def top(self, terms: Sequence[str], depth: int) -> tuple[list[int], np.ndarray]:
        """Indices of the best-scoring documents (score > 0), and all scores."""
        if self._bm25 is None or not self._n:
            return [], np.zeros(0, dtype=np.float32)
        vocab = self._bm25.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return [], np.zeros(self._n, dtype=np.float32)
        scores = np.asarray(self._bm25.get_scores(known), dtype=np.float32)
        return [i for i in top_indices(scores, depth) if scores[i] > 0.0], scores

    def matched(self, terms: Sequence[str], row: int) -> int:
        """How many distinct query terms the document of `row` contains."""
        return len(set(terms).intersection(self._corpus[row]))
