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
from collections.abc import Callable
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
    """One code point (of an NFD text) folded to a fixed point: a step can give a letter
    that folds further (Cyrillic ``т`` → small capital ``ᴛ`` → ``t``), and a skeleton
    that is not idempotent let ``insтrucтions`` pass as a different word."""
    out = _fold_step(ch)
    for _ in range(8):  # a fixed point after one more step for every code point
        again = "".join(_fold_step(c) for c in unicodedata.normalize("NFD", out))
        if again == out:
            break
        out = again
    return out


def _fold_step(ch: str) -> str:
    """One code point folded once; recursion only through NFKC and case folding, which
    are idempotent, so it ends."""
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
def compact(text: str) -> str:
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
