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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, TypeVar

R = TypeVar("R")

_TOKEN = re.compile(r"[^\W_]+")
#: Texts longer than this are folded every time rather than cached: a cache of a
#: submitter's megabyte values would hold memory an attacker chooses.
CACHE_LIMIT = 4096


def text_cache(maxsize: int) -> Callable[[Callable[[str], R]], Callable[[str], R]]:
    """``lru_cache`` for a function of one string, only for strings up to CACHE_LIMIT."""
    def wrap(fn: Callable[[str], R]) -> Callable[[str], R]:
        cached = lru_cache(maxsize=maxsize)(fn)

        def call(text: str) -> R:
            return cached(text) if len(text) <= CACHE_LIMIT else fn(text)
        call.__doc__ = fn.__doc__
        return call
    return wrap
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


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


@cache
def _ascii_maps() -> tuple[dict[int, int], tuple[tuple[str, str], ...]]:
    """The table split for speed: one-to-one mappings for ``str.translate``'s fast path,
    one-to-many (``m`` → ``rn``) as replacements; their outputs never overlap."""
    table = _ascii_table()
    single = {k: ord(v) for k, v in table.items() if v is not None and len(v) == 1}
    multi = tuple((chr(k), v) for k, v in table.items() if v is not None and len(v) > 1)
    return single, multi


def _ascii_fold(text: str) -> str:
    """``text.lower().translate(_ascii_table())``, about ten times faster."""
    low = text.lower()
    if _CONTROL.search(low):
        low = _CONTROL.sub("", low)
    single, multi = _ascii_maps()
    low = low.translate(single)
    for char, repl in multi:
        if char in low:
            low = low.replace(char, repl)
    return low


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


class _LazyTable(dict[int, str]):
    """A ``str.translate`` table filled on first sight of each code point, so a text is
    mapped at C speed once its characters are known (bounded: past the limit a code
    point is computed every time instead of stored)."""

    def __init__(self, fn: Callable[[str], str], limit: int = 65536) -> None:
        super().__init__()
        self._fn = fn
        self._limit = limit

    def __missing__(self, code: int) -> str:
        value = self._fn(chr(code))
        if len(self) < self._limit:
            self[code] = value
        return value


def _visible_char(ch: str) -> str:
    return ch if ch.isspace() or _char_class(ch) else ""


_VISIBLE = _LazyTable(_visible_char)
_FOLD = _LazyTable(lambda ch: _fold_char(ch))


def visible(text: str) -> str:
    """NFKC with invisible characters removed: what a browser or a model reads as text.

    Used by URL extraction, which must not apply the (lossy) confusables skeleton.
    """
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_VISIBLE)


@text_cache(maxsize=16384)
def _fold_chars(text: str) -> str:
    if text.isascii():
        return _ascii_fold(text)
    return unicodedata.normalize("NFD", text).translate(_FOLD)


@text_cache(maxsize=16384)
def fold_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``text``'s visual skeleton (see the module docstring)."""
    return tuple(_TOKEN.findall(_fold_chars(text)))


_ASCII_NOT_ALNUM = {c: None for c in range(128) if not chr(c).isalnum()}
_NOT_ALNUM = re.compile(r"[\W_]+")


@text_cache(maxsize=16384)
def _compact(text: str) -> str:
    """The tokens joined with nothing between (what a spaced-out marker becomes)."""
    folded = _fold_chars(text)
    if folded.isascii():
        return folded.translate(_ASCII_NOT_ALNUM)
    return _NOT_ALNUM.sub("", folded)


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
        self.compact = "".join(_compact(s) for s in strings)
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
