"""Pure predicates on the shape of a token: is it a word, a number, an address, a blob?

The sanitizer keeps a token only if it is something analysis needs and that cannot
carry a credential (default-deny). These functions say what a token *is*; the
sanitizer decides what to do with it. All are pure and cheap; the hot ones are cached.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from functools import lru_cache
from itertools import pairwise

# -- words ---------------------------------------------------------------------------

# Letter-bigram costs of English technical text: row = first letter, column = second,
# each character a base-36 digit of -4·log10 P(bigram). Derived once from the words in
# CPython 3.11's standard library sources (PSF licence), test suites excluded.
_BIGRAMS = (
    "gb9afdbiaic898kai898ccddci" "bgefahhkcckbghbflcdgblhlci" "9gdf9fhacmaaef8fhbd9bghkdl"
    "bffc7feh9ijchfagkccebiihek" "9d99a9cfdje7a8dab788fbc9bh" "bhfeccgk9nmchg9fkbecblhlfq"
    "ehhi9jeccmmdgcehrcbecgjnlh" "9jjh8jljarifghajpdgcemkngm" "cbaab9akfkf9a79bib88iclcnc"
    "hrlncnqojoknppeirlimfqprmr" "ejhhaigjdmlfkfhhkhdigjdrim" "9efb78hi9li9gf9enfabbhglbj"
    "9che8gkjcohecgaaqfcedkgogk" "9g988b9gbkddfd9dhga8cchkek" "dba9eacjcjcaa7ban7a9acbdhh"
    "9ife9giebrgahhabkadacggmcq" "lmmlmopnnprjohkkljimbomqrr" "9fbc7ebh9lddb99eoaa9bdejbn"
    "bhcg6fdb9kddcebbff98agehcl" "8fcd7dj78lecef9ck9a99gdfbg" "ccdeaddmcpjabaebo9a9ilninl"
    "ajhm9jlkcrolijfipjikiljmno" "bjifcilcaolfidcjkceikkhkpm" "debeceljdrnhfjidnigakkjfgk"
    "jgghehijernffefbneccjifmjj" "gomkckpjerrijkfkrmljmrnqkj"
)  # fmt: skip
_COST = tuple(int(c, 36) / 4 for c in _BIGRAMS)
MAX_WORD = 24  # longer runs of letters are not words (the longest common ones are ~20)
# Mean bigram cost above which a run of letters is gibberish rather than a word. Chosen
# on CPython's vocabulary vs. uniform random strings: ≤1.5 % of words ≥ 10 letters are
# rejected, ≤3 % of random strings of 16 letters pass (see docs/telemetry.md).
_GIBBERISH_LONG = 3.0
_GIBBERISH_SHORT = 3.3  # 8–9 letters: bigram means are noisier, be more tolerant
_SUBWORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def english_cost(letters: str) -> float:
    """Mean bigram cost of an ASCII-letter string (lower = more English-like)."""
    codes = [ord(c) - 97 for c in letters.lower()]
    if len(codes) < 2:
        return 0.0
    return sum(_COST[a * 26 + b] for a, b in pairwise(codes)) / (len(codes) - 1)


def _plain_word(letters: str) -> bool:
    n = len(letters)
    if n > MAX_WORD:
        return False
    if n < 8:
        return True
    return english_cost(letters) <= (_GIBBERISH_LONG if n >= 10 else _GIBBERISH_SHORT)


@lru_cache(maxsize=32768)
def is_word(letters: str) -> bool:
    """An ASCII-letter run that reads as a word or identifier: ``timeout``, ``IOError``,
    ``ResearchAgent``, ``ECONNRESET`` — not ``kHqZpWxR`` or ``qzkvbwmtplrhd``."""
    if len(letters) <= 3:
        return True
    if letters.islower() or letters.isupper() or letters[1:].islower():
        return _plain_word(letters)
    parts = _SUBWORD.findall(letters)
    if len(parts) > 1 + len(letters) // 4 or any(len(p) < 2 for p in parts[1:]):
        return False
    # each piece a word, and the whole still English-like (not "suuqavZjXedAff")
    return all(_plain_word(p) for p in parts) and _plain_word(letters.lower())


# Letters and digits together: versions, units, numeronyms and error codes; not secrets.
_MIXED_OK = re.compile(
    r"(?P<lead>[A-Za-z]{1,20})\d{1,3}"  # python3 sha256 utf8 v1 p95 HTTP2 x86 md5
    r"|\d{1,4}[A-Za-z]{1,3}"  # 2nd 4o 64bit 10x 5xx 512Mi 1080p
    r"|[a-z]\d{1,2}[a-z]{1,2}"  # e2e k8s i18n a11y l10n p2p
    r"|[A-Z]{1,5}\d{1,6}"  # E11000 ERR404 ORA12154
    r"|0[xX][0-9a-fA-F]{1,6}"  # 0x1F 0x110000 (eight hex digits can be an IPv4 address)
    r"|(?:\d{1,3}(?:ms|us|ns|h|m|s|d))+"  # 3m12s 1h30m
)


@lru_cache(maxsize=32768)
def part_kind(part: str) -> str:
    """What one run of letters/digits is: ``word``, ``number``, ``long-number`` or ``bad``."""
    if part.isdigit():
        return "number" if len(part) <= 3 else "long-number"
    if part.isalpha():
        if part.isascii():
            return "word" if is_word(part) else "bad"
        # another script: a word unless it mixes in Latin letters (look-alikes are folded)
        return "bad" if any(c.isascii() for c in part) else "word"
    if not part.isascii():
        return "bad"
    match = _MIXED_OK.fullmatch(part)
    if match is None:
        return "bad"
    lead = match.group("lead")
    return "word" if lead is None or is_word(lead) else "bad"


# -- numbers -------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_SSN = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")


def number_label(chain: str) -> str | None:
    """A run of digit groups (``4111 1111 1111 1111``, ``(555) 123-4567``): None if it is
    an ordinary small number to keep, else the placeholder label."""
    digits = "".join(c for c in chain if c.isdigit())
    groups = re.findall(r"\d+", chain)
    if len(digits) < 7 and all(len(g) <= 3 for g in groups):
        return None
    ascii_digits = digits.isascii()
    if ascii_digits and 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "card"
    if _SSN.fullmatch(chain):
        return "ssn"
    if chain.startswith("+") and 8 <= len(digits) <= 15:
        return "phone"
    if len(groups) >= 2 and 9 <= len(digits) <= 13 and ("(" in chain or len(groups) >= 3):
        return "phone"
    return "n"


# -- addresses -----------------------------------------------------------------------


def _whatwg_ipv4_part(part: str) -> int | None:
    """One part of an IPv4 host as a browser parses it: decimal, 0x-hex or 0-octal."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part, 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 host in any notation a URL parser accepts (``3232235777``, ``0xC0A80001``,
    ``0300.0250.0.1``, ``127.1``), or None."""
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    numbers = [_whatwg_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for i, v in enumerate(values[:-1]):
        address += v << (8 * (3 - i))
    return ipaddress.IPv4Address(address)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text.strip("[]").split("%", 1)[0]
    if ":" in candidate:
        try:
            v6 = ipaddress.IPv6Address(candidate)
        except ValueError:
            return None
        return v6.ipv4_mapped or v6
    return parse_ipv4(candidate)


def ip_label(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if address.is_loopback:
        return "ip:loopback"
    if address.is_private or address.is_link_local:
        return "ip:private"
    return "ip"


# -- blobs ---------------------------------------------------------------------------

_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{8,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,3}")


def entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def blob_label(token: str) -> str:
    """The placeholder for a token that is not kept and matched no named rule."""
    if _UUID.fullmatch(token):
        return "uuid"
    if _HEX.fullmatch(token) and any(c.isdigit() for c in token):
        return "hex"
    if len(token) >= 20 and _BASE64.fullmatch(token) and entropy(token) >= 3.5:
        return "secret:high-entropy"
    return "token"
