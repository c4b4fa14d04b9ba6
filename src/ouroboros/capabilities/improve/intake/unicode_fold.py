"""Unicode normalisation before secret detection: the sanitizer sees what a reader would.

A secret split by zero-width characters, written in full-width letters, spelt with a
Cyrillic ``а`` in its key name, or wrapped in terminal colour codes must look like
itself to the detectors. ``fold`` therefore

1. drops format characters (Unicode category Cf: zero-width space/joiners, word
   joiner, BOM, soft hyphen, bidi controls, tag characters), C0/C1 controls other than
   tab and newline, ANSI escape sequences, and combining marks that sit on ASCII
   characters (overlay tricks such as ``g̶h̶p̶_``);
2. applies NFKC (full-width and other compatibility forms become ASCII; NBSP becomes a
   space);
3. maps look-alike Cyrillic/Greek letters to Latin inside words that also contain
   Latin letters (a TR39 skeleton for the scripts that matter here; words written
   wholly in another script are left alone);
4. replaces lone surrogates, which cannot be stored as UTF-8, with U+FFFD;
5. writes the HTML spellings of ``@`` that end in ``;`` (``&#64;``, ``&#x40;``,
   ``&commat;``) as ``@``: their ``;`` ends a token, which split an address in two
   (``PASSWORD=bob&#64;example.org`` kept ``;example.org``).

The stored text is the folded text: what was analysed is what is kept.
"""

from __future__ import annotations

import re
import unicodedata

# Look-alikes (Unicode confusables.txt, the letters that render like ASCII in common fonts).
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁһԛԝӏАВЕКМНОРСТХУІЈЅԜ"  # Cyrillic
    "αοριυνκτχεΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"  # Greek
    "ıİſ",  # dotless i, dotted capital I, long s
    "aeopcyxijsdhqwlABEKMHOPCTXYIJSWaopiuvktxeABEZHIKMNOPTYXiIs",
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL_ASCII = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WORD = re.compile(r"\w+")
_AT_ENTITY = re.compile(r"&#0*64;|&#[xX]0*40;|&commat;")


def fold(text: str) -> str:
    """The normalised form of ``text`` (idempotent: ``fold(fold(t)) == fold(t)``)."""
    text = _fold_code_points(text)
    return _AT_ENTITY.sub("@", text) if "&" in text else text


def _fold_code_points(text: str) -> str:
    if text.isascii():
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        return _CONTROL_ASCII.sub("", text) if _CONTROL_ASCII.search(text) else text
    text = _ANSI.sub("", text) if "\x1b" in text else text
    text = unicodedata.normalize("NFKC", _strip(text))
    text = _strip(text)  # NFKC can expose new ones (rare, but fold must be idempotent)
    return _WORD.sub(_unconfuse, text) if _has_ascii_letter(text) else text


def _strip(text: str) -> str:
    out: list[str] = []
    after_ascii = False
    for ch in text:
        if ch.isascii():
            if ch in "\t\n\r" or " " <= ch <= "~":
                out.append(ch)
            after_ascii = not ch.isspace()
            continue
        category = unicodedata.category(ch)
        if category in ("Cf", "Cc", "Cs"):
            if category == "Cs":
                out.append("\ufffd")
            continue
        if category == "Mn" and after_ascii:
            continue  # a combining overlay on an ASCII character hides nothing but it
        out.append(ch)
        after_ascii = False
    return "".join(out)


def _has_ascii_letter(text: str) -> bool:
    return any("a" <= c <= "z" or "A" <= c <= "Z" for c in text)


def _unconfuse(match: re.Match[str]) -> str:
    word = match.group()
    if word.isascii() or not _has_ascii_letter(word):
        return word
    return word.translate(_CONFUSABLE)
