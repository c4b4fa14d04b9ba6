"""Prompt-injection markers found in folded text (see :mod:`textfold` for the folding).

A marker matches as a phrase anywhere in the strings read as one text; spelt out with
spaces inside words (aligned on token boundaries); and, for a marker with punctuation
(``<|im_start|>``), on the folded form that keeps punctuation.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ouroboros.kernel.textfold import CACHE_LIMIT, compact, fold_dense, fold_tokens


@dataclass(frozen=True)
class Marker:
    """A phrase to find, pre-folded. Wordy markers match on tokens; a marker with
    punctuation (``<|im_start|>``) matches on the dense form, punctuation included."""

    text: str
    spaced: str
    compact: str
    dense: str
    words: int
    wordy: bool


@lru_cache(maxsize=64)
def compile_markers(markers: tuple[str, ...]) -> tuple[Marker, ...]:
    out = []
    for m in markers:
        tokens = fold_tokens(m)
        dense = fold_dense(m)
        if not dense:
            continue  # a marker that folds to nothing would match everything
        compact = "".join(tokens)
        out.append(Marker(m, " ".join(tokens), compact, dense, len(tokens), dense == compact))
    return tuple(out)


@dataclass(frozen=True)
class Hit:
    marker: str
    index: int  # which of the scanned strings the match starts in


class Document:
    """Several strings read as one text (a value's strings are often joined into a
    prompt, so a marker split across two of them still counts).

    The joined forms are built once; token boundaries (needed only to place a hit or to
    check the alignment of a spaced-out match) only when a search gets that far.
    """

    def __init__(self, strings: Sequence[str]) -> None:
        self._strings = strings
        self.compact = "".join(compact(s) for s in strings)
        self._per: list[tuple[str, ...]] | None = None
        self._spaced: str | None = None
        self._dense: str | None = None
        self._bounds: tuple[list[int], list[int], list[int], set[int], set[int]] | None = None

    @property
    def _per_string(self) -> list[tuple[str, ...]]:
        if self._per is None:
            self._per = [fold_tokens(s) for s in self._strings]
        return self._per

    @property
    def spaced(self) -> str:
        if self._spaced is None:
            self._spaced = " ".join(" ".join(t) for t in self._per_string if t)
        return self._spaced

    @property
    def dense(self) -> str:
        if self._dense is None:
            self._dense = "".join(fold_dense(s) for s in self._strings)
        return self._dense

    def _boundaries(self) -> tuple[list[int], list[int], list[int], set[int], set[int]]:
        """(owner, spaced starts, compact starts, compact start set, compact end set)."""
        if self._bounds is None:
            owner: list[int] = []
            spaced: list[int] = []
            compact: list[int] = []
            s_pos = c_pos = 0
            for i, toks in enumerate(self._per_string):
                for t in toks:
                    owner.append(i)
                    spaced.append(s_pos)
                    compact.append(c_pos)
                    s_pos += len(t) + 1
                    c_pos += len(t)
            ends = {c + len(t) for c, t in zip(compact, (t for ts in self._per_string
                                                          for t in ts), strict=True)}
            self._bounds = (owner, spaced, compact, set(compact), ends)
        return self._bounds

    def _owner_at(self, starts: list[int], offset: int) -> int:
        owner = self._boundaries()[0]
        k = bisect_right(starts, offset) - 1
        return owner[k] if 0 <= k < len(owner) else 0

    def find(self, marker: Marker) -> int | None:
        """Index of the string where ``marker`` starts, or None."""
        if not marker.wordy:
            at = self.dense.find(marker.dense)
            if at < 0:
                return None
            starts, pos = [], 0
            for s in self._strings:
                starts.append(pos)
                pos += len(fold_dense(s))
            return max(0, bisect_right(starts, at) - 1)
        at = self.compact.find(marker.compact)
        if at < 0:  # the compact form contains every other match: most texts stop here
            return None
        hit = self.spaced.find(marker.spaced)
        if hit >= 0:
            return self._owner_at(self._boundaries()[1], hit)
        # Letters spaced out or words split ("i g n o r e", "previ ous"): the joined
        # letters must line up with token boundaries — both ends for a one-word marker
        # (so "jail breakfast" is not "jailbreak"), one end for a phrase.
        _, _, compact_starts, start_set, end_set = self._boundaries()
        while at >= 0:
            start_ok = at in start_set
            end_ok = at + len(marker.compact) in end_set
            if (start_ok and end_ok) or (marker.words > 1 and (start_ok or end_ok)):
                return self._owner_at(compact_starts, at)
            at = self.compact.find(marker.compact, at + 1)
        return None


@lru_cache(maxsize=64)
def _screen(texts: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One alternation per form, so a text without any marker costs two searches."""
    markers = compile_markers(texts)
    compact = [re.escape(m.compact) for m in markers if m.wordy]
    dense = [re.escape(m.dense) for m in markers if not m.wordy]
    return (re.compile("|".join(compact)) if compact else None,
            re.compile("|".join(dense)) if dense else None)


def find_markers(strings: Sequence[str], markers: Iterable[str]) -> list[Hit]:
    """Every marker found in ``strings`` (read as one text), with where it starts."""
    key, marks = tuple(strings), tuple(markers)
    if sum(map(len, key)) <= CACHE_LIMIT:
        return list(_find_markers_cached(key, marks))
    return list(_find_markers(key, marks))


def _find_markers(strings: tuple[str, ...], markers: tuple[str, ...]) -> tuple[Hit, ...]:
    compiled = compile_markers(markers)
    if not compiled or not strings:
        return ()
    doc = Document(strings)
    compact_rx, dense_rx = _screen(markers)
    wordy = compact_rx is not None and compact_rx.search(doc.compact) is not None
    punctuated = dense_rx is not None and dense_rx.search(doc.dense) is not None
    hits = []
    for m in compiled:
        if (wordy if m.wordy else punctuated):
            index = doc.find(m)
            if index is not None:
                hits.append(Hit(m.text, index))
    return tuple(hits)


_find_markers_cached = lru_cache(maxsize=4096)(_find_markers)
