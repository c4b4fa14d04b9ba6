"""Text folded to what a reader sees, so that look-alike spellings match one marker.

The audit gate looks for prompt-injection markers; a plain substring test is evaded by
invisible characters, compatibility forms, homoglyphs and spacing. :func:`fold` maps a
text to its *visual skeleton*:

1. NFKC (full-width, mathematical, circled and ligature forms to their base letters),
2. full case folding (``str.casefold``; Turkish ``İ`` becomes ``i`` + combining dot),
3. NFD, then every invisible or decorating code point dropped: format characters
   (``Cf``: zero-width space/joiners, soft hyphen, bidi controls, tag characters),
   combining marks (``Mn``/``Me``: the dot of ``İ``, strike-throughs, variation
   selectors), unassigned, private-use and control characters,
4. the confusables skeleton of Unicode TR39 (ICU's ``SpoofChecker.getSkeleton``, the
   reference implementation, data from the system ICU: Cyrillic ``а``, Greek ``ο``,
   dotless ``ı`` … to their Latin prototypes), small capitals to their letters,
   then case folded and stripped again,
5. split into tokens: maximal runs of letters and digits; everything else (spaces of
   every kind incl. NBSP and newlines, punctuation, symbols) separates.

ASCII text (the common case) takes a fast path: lower-casing and one ``str.translate``
through the skeleton of the ASCII characters give the same result as the full pipeline.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

_TOKEN = re.compile(r"[^\W_]+")
#: Categories dropped: invisible or decorating, never a letter a reader sees.
_DROP = frozenset({"Cf", "Mn", "Me", "Cn", "Co", "Cs"})
#: Blank letters (``Lo``) that render as nothing: Hangul fillers, used to pad words.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_SMALL_CAPITAL = "LATIN LETTER SMALL CAPITAL "


@cache
def _spoof_checker() -> Any:
    import icu  # PyICU: built against the system ICU (libicu-dev)

    return icu.SpoofChecker()


def skeleton(text: str) -> str:
    """The TR39 confusables skeleton of ``text`` (ICU's, without the folding around it)."""
    return str(_spoof_checker().getSkeleton(0, text))


@cache
def _ascii_table() -> dict[int, str | None]:
    """``str.translate`` table: each ASCII character to its folded skeleton (``m`` to
    ``rn``, ``0`` to ``o``, ``|`` to ``l``), control characters other than whitespace
    deleted, exactly as the full pipeline treats them.
    """
    table: dict[int, str | None] = {}
    for code in range(128):
        ch = chr(code)
        if unicodedata.category(ch) == "Cc" and not ch.isspace():
            table[code] = None
        elif not ch.isspace():
            folded = _strip(skeleton(ch.lower()).casefold())
            if folded != ch.lower():
                table[code] = folded
    return table


@lru_cache(maxsize=8192)
def _char_class(ch: str) -> str:
    """'' (drop), ' ' (separator) or the character itself (possibly re-mapped)."""
    if ch in _BLANK_LETTERS:
        return ""
    cat = unicodedata.category(ch)
    if cat in _DROP:
        return ""
    if cat == "Cc":
        return " " if ch.isspace() else ""
    if ch.isalpha() and not ch.isascii():
        name = unicodedata.name(ch, "")
        if name.startswith(_SMALL_CAPITAL):  # ɪɢɴᴏʀᴇ: not in NFKC nor in confusables
            letter = name[len(_SMALL_CAPITAL):]
            if len(letter) == 1:
                return letter.lower()
    return ch


def _strip(text: str) -> str:
    return "".join([_char_class(c) for c in unicodedata.normalize("NFD", text)])


def visible(text: str) -> str:
    """NFKC with invisible characters removed: what a browser or a model reads as text.

    Used by URL extraction, which must not apply the (lossy) confusables skeleton.
    """
    if text.isascii():
        return text
    nfkc = unicodedata.normalize("NFKC", text)
    return "".join([c for c in nfkc if _char_class(c)])


def _fold_chars(text: str) -> str:
    if text.isascii():
        return text.lower().translate(_ascii_table())
    folded = _strip(unicodedata.normalize("NFKC", text).casefold())
    return _strip(skeleton(folded).casefold()).translate(_ascii_table())


@lru_cache(maxsize=16384)
def fold_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``text``'s visual skeleton (see the module docstring)."""
    return tuple(_TOKEN.findall(_fold_chars(text)))


@lru_cache(maxsize=16384)
def fold_dense(text: str) -> str:
    """The visual skeleton with whitespace removed and punctuation kept."""
    return "".join(_fold_chars(text).split())


def fold(text: str) -> str:
    """The visual skeleton as one string of space-separated tokens."""
    return " ".join(fold_tokens(text))


@dataclass(frozen=True)
class Marker:
    """A phrase to find, pre-folded. Wordy markers match on tokens; a marker with
    punctuation (``<|im_start|>``) matches on the dense form, punctuation included."""

    text: str
    spaced: str
    compact: str
    dense: str
    words: int

    @property
    def wordy(self) -> bool:
        return self.dense == self.compact


@lru_cache(maxsize=64)
def compile_markers(markers: tuple[str, ...]) -> tuple[Marker, ...]:
    out = []
    for m in markers:
        tokens = fold_tokens(m)
        dense = fold_dense(m)
        if not dense:
            continue  # a marker that folds to nothing would match everything
        out.append(Marker(m, " ".join(tokens), "".join(tokens), dense, len(tokens)))
    return tuple(out)


@dataclass(frozen=True)
class Hit:
    marker: str
    index: int  # which of the scanned strings the match starts in


class Document:
    """Several strings read as one text (a value's strings are often joined into a
    prompt, so a marker split across two of them still counts)."""

    def __init__(self, strings: Sequence[str]) -> None:
        tokens: list[str] = []
        owner: list[int] = []
        dense_parts: list[str] = []
        dense_starts: list[int] = []
        pos = 0
        for i, s in enumerate(strings):
            toks = fold_tokens(s)
            tokens.extend(toks)
            owner.extend([i] * len(toks))
            d = fold_dense(s)
            dense_starts.append(pos)
            dense_parts.append(d)
            pos += len(d)
        self._tokens = tokens
        self._owner = owner
        self.spaced = " ".join(tokens)
        self.compact = "".join(tokens)
        self.dense = "".join(dense_parts)
        self._dense_starts = dense_starts
        # Token boundaries, as offsets into `spaced` and into `compact`.
        self._spaced_starts: list[int] = []
        self._compact_starts: list[int] = []
        s_pos = c_pos = 0
        for t in tokens:
            self._spaced_starts.append(s_pos)
            self._compact_starts.append(c_pos)
            s_pos += len(t) + 1
            c_pos += len(t)
        self._compact_start_set = set(self._compact_starts)
        self._compact_end_set = {c + len(t) for c, t in zip(self._compact_starts, tokens,
                                                            strict=True)}

    def _owner_of(self, starts: list[int], offset: int) -> int:
        k = bisect_right(starts, offset) - 1
        return self._owner[k] if 0 <= k < len(self._owner) else 0

    def find(self, marker: Marker) -> int | None:
        """Index of the string where ``marker`` starts, or None."""
        if not marker.wordy:
            at = self.dense.find(marker.dense)
            if at < 0:
                return None
            return max(0, bisect_right(self._dense_starts, at) - 1)
        at = self.spaced.find(marker.spaced)
        if at >= 0:
            return self._owner_of(self._spaced_starts, at)
        # Letters spaced out or words split ("i g n o r e", "previ ous"): the joined
        # letters must line up with token boundaries — both ends for a one-word marker
        # (so "jail breakfast" is not "jailbreak"), one end for a phrase.
        at = self.compact.find(marker.compact)
        while at >= 0:
            start_ok = at in self._compact_start_set
            end_ok = at + len(marker.compact) in self._compact_end_set
            if (start_ok and end_ok) or (marker.words > 1 and (start_ok or end_ok)):
                return self._owner_of(self._compact_starts, at)
            at = self.compact.find(marker.compact, at + 1)
        return None


def find_markers(strings: Sequence[str], markers: Iterable[str]) -> list[Hit]:
    """Every marker found in ``strings`` (read as one text), with where it starts."""
    compiled = compile_markers(tuple(markers))
    if not compiled or not strings:
        return []
    doc = Document(strings)
    hits = []
    for m in compiled:
        index = doc.find(m)
        if index is not None:
            hits.append(Hit(m.text, index))
    return hits
