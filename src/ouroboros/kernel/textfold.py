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
    """Text folded to what a reader sees, so that look-alike spellings match one marker.

The audit gate looks for prompt-injection markers; a plain substring test is evaded by
invisible characters, compatibility forms, homoglyphs and spacing. :func:`fold` maps a
text to its *visual skeleton*, code point by code point of its NFD form:

1. invisible or decorating code points are dropped: format characters (``Cf``:
   zero-width space/joiners, soft hyphen, bidi controls, tag characters), combining
   marks (``Mn``/``Me``: the dot of Turkish ``İ``, accents, strike-throughs, variation
   selectors), unassigned, private-use, surrogate and non-space control characters, and
   the blank Hangul fillers; every kind of space (NBSP, ideographic, line separator)
   becomes a space;
2. the confusables skeleton of Unicode TR39 (ICU's ``SpoofChecker.getSkeleton``, the
   reference implementation, with the system ICU's data) when it gives a Latin letter:
   Cyrillic ``а``/``М``, Greek ``ο``/``ϲ``, mathematical ``𝐢``, ligature ``ﬁ``;
3. otherwise the NFKC (compatibility) form — full-width, circled — or, for a capital,
   its case fold (``str.casefold``), each folded again; small capitals become their
   letter (``ɪɢɴᴏʀᴇ``: neither NFKC nor TR39 map them);
4. ASCII is lower-cased and put through the skeleton of ASCII (``m`` → ``rn``, ``0`` →
   ``o``, ``1``/``|``/``i`` → ``l``);
5. the result is split into tokens: maximal runs of letters and digits; everything
   else (spaces, punctuation, symbols) separates.

Pure ASCII text (the common case) takes a fast path: lower-casing and one
``str.translate``, by construction the same as the per-code-point path.
"""
    return str(_spoof_checker().getSkeleton(0, text))


@cache
def _ascii_table() -> dict[int, str | None]:
    """``str.translate`` table for lower-cased ASCII: each character to its skeleton
    (``m`` to ``rn``, ``0`` to ``o``, ``1`` and ``|`` to ``l``), control characters other
    than whitespace deleted. ``i`` goes to ``l`` as well: TR39 makes ``I`` and ``l``
    confusable and case folding makes ``I`` and ``i`` one letter, so under both the
    three are one (``İGNORE``, ``іgnore``, ``lgnore``, ``1gnore`` read alike).
    """
    table: dict[int, str | None] = {ord("i"): "l"}
    for code in range(128):
        ch = chr(code)
        if unicodedata.category(ch) == "Cc" and not ch.isspace():
            table[code] = None
        elif not ch.isspace() and not ch.isupper():
            folded = skeleton(ch).lower()
            if folded != ch and folded.isascii():
                table[code] = folded.translate({ord("i"): "l"})
    return table


def _ascii_fold(text: str) -> str:
    return text.lower().translate(_ascii_table())


@lru_cache(maxsize=16384)
def _fold_char(ch: str) -> str:
    """One code point (of an NFD text) folded; recursion only through NFKC and case
    folding, which are idempotent, so it ends."""
    if ch.isascii():
        return _ascii_fold(ch)
    cls = _char_class(ch)
    if cls != ch:  # invisible, a separator, or a small capital's letter
        return _ascii_fold(cls) if cls.isascii() else cls
    proto = skeleton(ch)
    if proto.isascii():  # a Latin look-alike: Cyrillic М, Greek ϲ, Cherokee Ꭺ, 𝐜, ﬁ
        return _ascii_fold(proto)
    compat = unicodedata.normalize("NFKD", ch)
    if compat != ch:  # full-width, circled, ligature and other compatibility forms
        return "".join(_fold_char(c) for c in compat)
    lower = ch.casefold()
    if lower != ch:
        return "".join(_fold_char(c) for c in unicodedata.normalize("NFD", lower))
    # A letter of another script: its own prototype, so look-alikes within it match.
    return "".join(c for c in unicodedata.normalize("NFD", proto.casefold()) if _char_class(c))


@lru_cache(maxsize=8192)
def _char_class(ch: str) -> str:
    """'' (drop), ' ' (separator) or the character itself (a small capital: its letter)."""
    if ch in _BLANK_LETTERS:
        return ""
    cat = unicodedata.category(ch)
    if cat in _DROP:
        return ""
    if cat == "Cc" or cat == "Zs" or cat in ("Zl", "Zp"):
        return " " if ch.isspace() else ""
    if ch.isalpha() and not ch.isascii():
        name = unicodedata.name(ch, "")
        if name.startswith(_SMALL_CAPITAL):  # ɪɢɴᴏʀᴇ: not in NFKC nor in confusables
            letter = name[len(_SMALL_CAPITAL):]
            if len(letter) == 1:
                return letter.lower()
    return ch


def visible(text: str) -> str:
    """NFKC with invisible characters removed: what a browser or a model reads as text.

    Used by URL extraction, which must not apply the (lossy) confusables skeleton.
    """
    if text.isascii():
        return text
    nfkc = unicodedata.normalize("NFKC", text)
    return "".join([c for c in nfkc if c.isspace() or _char_class(c)])


def _fold_chars(text: str) -> str:
    if text.isascii():
        return _ascii_fold(text)
    return "".join([_fold_char(c) for c in unicodedata.normalize("NFD", text)])


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
