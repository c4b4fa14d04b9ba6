"""Prompt-injection markers found in folded text (see :mod:`textfold` for the folding).

A marker matches as a phrase anywhere in the strings read as one text; spelt out with
spaces inside words (aligned on token boundaries); and, for a marker with punctuation
(``<|im_start|>``), on the folded form that keeps punctuation.

A marker with brace groups is a *family*: ``{ignore,disregard} {all ,the ,}{previous,prior}
instructions`` stands for every phrase its groups spell (an empty alternative makes a
group optional). A family is matched as one regular expression over the letters of the
text, and a match counts only where it starts and ends on word boundaries: a phrase
list that would run to thousands of markers costs one search.
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
    family: bool = False
    #: A family's cheap screen: the letters of one group every phrase contains, the group
    #: whose shortest alternative is longest (the nouns, rarely the verbs); the family's
    #: regex runs only on texts holding one of them.
    anchors: tuple[str, ...] = ()


_GROUP = re.compile(r"\{([^{}]*,[^{}]*)\}")
#: Alternatives a family may spell at most (a gates config is root's, but a typo like
#: ten groups of ten must not make every audit search a billion phrases: such a marker
#: is kept as its literal text).
MAX_FAMILY = 100_000


def _family(marker: str) -> tuple[str, tuple[str, ...]] | None:
    """The regex over compact (folded, unspaced) text of a marker with brace groups and
    its anchors (see `Marker`), or None for a plain marker (or one past `MAX_FAMILY`)."""
    parts = _GROUP.split(marker)
    if len(parts) == 1:
        return None
    out, size = [], 1
    anchors: tuple[str, ...] = ()
    for i, part in enumerate(parts):
        if i % 2 == 0:  # literal text between groups
            literal = "".join(fold_tokens(part))
            out.append(re.escape(literal))
            if len(literal) > min(map(len, anchors), default=0):
                anchors = (literal,)
            continue
        alts = sorted({"".join(fold_tokens(a)) for a in part.split(",")}, key=len,
                      reverse=True)  # longest first: "previous" before "prev"
        size *= len(alts)
        body = "|".join(re.escape(a) for a in alts if a)
        out.append(f"(?:{body})" + ("?" if "" in alts else "") if body else "")
        if "" not in alts and min(map(len, alts)) > min(map(len, anchors), default=0):
            anchors = tuple(alts)
    if size > MAX_FAMILY or not anchors:
        return None
    return "".join(out), anchors


def family_name(marker: str) -> str:
    """How a family is named in a finding: its first phrasing (the first alternative of
    each group), "or a variant"; the whole family would fill a rejection with a list."""
    phrase = _GROUP.sub(lambda g: next((a for a in g.group(1).split(",") if a), ""), marker)
    return " ".join(phrase.split()) + " (or a variant)"


@lru_cache(maxsize=64)
def compile_markers(markers: tuple[str, ...]) -> tuple[Marker, ...]:
    out = []
    for m in markers:
        family = _family(m)
        if family is not None:
            out.append(Marker(family_name(m), "", family[0], "", 2, True, family=True,
                              anchors=family[1]))
            continue
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
        self._tokens: list[str] = []  # every string's tokens in a row, with _bounds

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
            tokens: list[str] = []
            s_pos = c_pos = 0
            for i, toks in enumerate(self._per_string):
                for t in toks:
                    owner.append(i)
                    spaced.append(s_pos)
                    compact.append(c_pos)
                    tokens.append(t)
                    s_pos += len(t) + 1
                    c_pos += len(t)
            ends = {c + len(t) for c, t in zip(compact, tokens, strict=True)}
            self._tokens = tokens
            self._bounds = (owner, spaced, compact, set(compact), ends)
        return self._bounds

    def _owner_at(self, starts: list[int], offset: int) -> int:
        owner = self._boundaries()[0]
        k = bisect_right(starts, offset) - 1
        return owner[k] if 0 <= k < len(owner) else 0

    def find(self, marker: Marker) -> int | None:
        """Index of the string where ``marker`` starts, or None."""
        if marker.family:
            # the flat token list comes with the boundaries, built once per document: up
            # to nine families are tried on a text whose anchors hit
            _, _, compact_starts, start_set, end_set = self._boundaries()
            tokens = self._tokens
            for match in _family_rx(marker.compact).finditer(self.compact):
                if match.start() in start_set and match.end() in end_set:
                    k = bisect_right(compact_starts, match.start()) - 1
                    if _negated(tokens, k):  # "never disclose your system prompt"
                        continue
                    return self._owner_at(compact_starts, match.start())
            return None
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
def _screen(texts: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None,
                                             re.Pattern[str] | None]:
    """One alternation per form (plain phrases, punctuated ones, the families' anchors),
    so a text without any marker costs three searches."""
    markers = compile_markers(texts)
    compact = [re.escape(m.compact) for m in markers if m.wordy and not m.family]
    dense = [re.escape(m.dense) for m in markers if not m.wordy]
    anchors = sorted({re.escape(a) for m in markers if m.family for a in m.anchors})
    return (re.compile("|".join(compact)) if compact else None,
            re.compile("|".join(dense)) if dense else None,
            re.compile("|".join(anchors)) if anchors else None)


def _negated(tokens: list[str], k: int) -> bool:
    """Whether the words just before token ``k`` negate what follows ("not", "never",
    "don't", "must not", "refuse to"): a family's phrase there is an instruction not to
    do it, as system prompts write their own defences. Only the family markers read
    this; a plain marker matches wherever it stands."""
    one = tokens[k - 1] if k >= 1 else ""
    two = tokens[k - 2] + one if k >= 2 else one
    return one in _NEGATIONS or two in _NEGATIONS


_NEGATIONS = frozenset("".join(fold_tokens(w)) for w in (
    "not", "never", "nor", "cannot", "don't", "doesn't", "didn't", "can't", "won't",
    "shouldn't", "mustn't", "wouldn't", "refuse to", "refuses to", "decline to"))


@lru_cache(maxsize=256)
def _family_rx(source: str) -> re.Pattern[str]:
    return re.compile(source)


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
    compact_rx, dense_rx, anchor_rx = _screen(markers)
    wordy = compact_rx is not None and compact_rx.search(doc.compact) is not None
    punctuated = dense_rx is not None and dense_rx.search(doc.dense) is not None
    anchored = anchor_rx is not None and anchor_rx.search(doc.compact) is not None
    hits = []
    for m in compiled:
        if m.family:
            screened = anchored and any(a in doc.compact for a in m.anchors)
        else:
            screened = wordy if m.wordy else punctuated
        if screened:
            index = doc.find(m)
            if index is not None:
                hits.append(Hit(m.text, index))
    return tuple(hits)


_find_markers_cached = lru_cache(maxsize=4096)(_find_markers)
