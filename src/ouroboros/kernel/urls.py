"""URLs in free text, parsed and resolved the way a browser would (WHATWG URL).

Candidates are found generously, then each one is parsed by ``ada-url`` (a WHATWG URL
Standard implementation), so the *host* is the one a browser would contact: userinfo
(``https://example.com)@evil.com``), backslashes (``https:\\\\evil.com``), special
schemes without slashes (``https:evil.com``), percent-encoded and IDNA hosts
(``evil%2Ecom``, ``еxample.com`` → ``xn--xample-2of.com``, full-width dots), IPv4 in
decimal, hex or octal (``2130706433``, ``0x7f.1``), IPv6 literals, tabs and newlines
inside a URL.

Kinds of candidate:

- ``scheme://…`` or ``scheme:\\\\…`` for any scheme (``gopher://``, ``xhttps://``);
- ``http(s)``, ``ws(s)``, ``ftp``, ``file`` followed by anything (``https:evil.com``);
- opaque schemes that carry code or data (``javascript:``, ``data:``, ``vbscript:``,
  ``blob:``, ``mailto:`` …);
- scheme-relative ``//host/…`` (kept when the host is a domain with a dot, an IP or
  ``localhost``, so ``//TODO`` is not a URL);
- bare ``host.tld/path`` or ``host.tld:port`` (kept when the suffix is a public suffix
  in the Public Suffix List, or the host is an IPv4 address).

A candidate that does not parse is returned as malformed (``error`` set), never raised.
Text is read raw, as NFKC with invisible characters removed (full-width ``ｈｔｔｐｓ：``),
and with ASCII tabs and newlines removed (``java\\nscript:``, as the URL parser does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import ada_url

from ouroboros.kernel.textfold import CACHE_LIMIT, text_cache, visible

_SCHEME_START = r"(?<![a-z0-9+.\-])"
_HIERARCHICAL = re.compile(_SCHEME_START + r"[a-z][a-z0-9+.\-]*:[/\\]{2}\S*", re.I)
_SPECIAL = re.compile(_SCHEME_START + r"(?:https?|wss?|ftp|file):(?![/\\]{2})\S+", re.I)
_OPAQUE_SCHEMES = ("javascript", "vbscript", "data", "blob", "filesystem", "view-source",
                   "jar", "intent", "mailto")
_OPAQUE = re.compile(_SCHEME_START + r"(?:" + "|".join(_OPAQUE_SCHEMES) + r"):\S+", re.I)
_RELATIVE = re.compile(r"(?<![\w:/\\])[/\\]{2}[^\s/\\]\S*")
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_BARE = re.compile(
    r"(?<![\w@.\-/\\:%])(?:(?:" + _LABEL + r"\.)+[^\W\d_][\w-]*|\d{1,3}(?:\.\d{1,3}){3})"
    r"(?::\d{1,5}(?:[/?#]\S*)?|[/?#]\S*)", re.I)
_TRAILING = ".,;:!?'\")]}>"
_URL_PUNCTUATION = re.compile(r"[:/\\?#]")
_SPACE = re.compile(r"\s")
_NEWLINES = str.maketrans("", "", "\t\n\r")
_HOST_KINDS = {0: "domain", 1: "ipv4", 2: "ipv6"}
_BASE = "https://relative.invalid/"


@dataclass(frozen=True, order=True)
class UrlRef:
    """One URL as a browser resolves it.

    ``url`` is the normalised href (or the raw candidate when malformed); ``host`` is
    ASCII, lower-case, without a trailing dot (``""`` when the URL has none, as for
    ``data:`` or ``file:///``); ``kind`` is domain, ipv4, ipv6, none or invalid.
    """

    url: str
    scheme: str
    host: str
    kind: str
    error: str = ""

    def as_fact(self) -> dict[str, str]:
        return {"url": self.url, "scheme": self.scheme, "host": self.host,
                "kind": self.kind, "error": self.error}


def _malformed(raw: str, why: str) -> UrlRef:
    scheme = raw.split(":", 1)[0].lower() if ":" in raw[:40] else ""
    return UrlRef(raw[:200], scheme, "", "invalid", why)


def _mailto_host(url: Any) -> str:
    address = ada_url.URL(f"https://{url.pathname.split('?')[0].rsplit('@', 1)[-1]}/")
    return str(address.hostname)


def parse(raw: str, *, base: str | None = None) -> UrlRef:
    """One candidate parsed (never raises: a bad URL comes back with ``error`` set)."""
    if len(raw) <= CACHE_LIMIT:
        return _parse_cached(raw, base)
    return _parse(raw, base)


def _parse(raw: str, base: str | None) -> UrlRef:
    try:
        url = ada_url.URL(raw, base) if base else ada_url.URL(raw)
    except (ValueError, TypeError):
        return _malformed(raw, "not a valid URL")
    scheme = str(url.protocol).rstrip(":").lower()
    host = str(url.hostname).lower().rstrip(".")
    kind = _HOST_KINDS.get(int(url.host_type), "domain") if host else "none"
    if scheme == "mailto" and "@" in str(url.pathname):
        try:
            host, kind = _mailto_host(url).lower().rstrip("."), "domain"
        except (ValueError, TypeError):
            host = ""
        if not host:
            return _malformed(raw, "mailto: address has no valid domain")
    return UrlRef(str(url.href), scheme, host, kind)


_parse_cached = lru_cache(maxsize=8192)(_parse)


@cache
def _suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _known_suffix(host: str) -> bool:
    return _suffixes().publicsuffix(host, accept_unknown=False) is not None


def _trim(candidate: str) -> str:
    return candidate.rstrip(_TRAILING) or candidate


def _punctuated_words(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` that hold ``:``, ``/``, ``\\``, ``?``
    or ``#`` (found from the punctuation outwards: a regex over every word is slower)."""
    words, end = [], -1
    for m in _URL_PUNCTUATION.finditer(text):
        at = m.start()
        if at < end:
            continue
        start = at
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        space = _SPACE.search(text, at)
        end = space.start() if space else len(text)
        words.append(text[start:end])
    return words


def _candidates(text: str) -> list[tuple[str, str]]:
    """(kind, candidate) pairs: absolute, relative or bare.

    A candidate never spans whitespace, so only the whitespace-separated words that
    have a URL's punctuation are searched (prose has few): the regexes stay off the
    hot path of long texts.
    """
    found: list[tuple[str, str]] = []
    for word in dict.fromkeys(_punctuated_words(text)):
        slashes = "//" in word or "\\\\" in word or "/\\" in word or "\\/" in word
        rxs = [("absolute", _HIERARCHICAL)] if slashes else []
        if ":" in word:
            rxs += [("absolute", _SPECIAL), ("absolute", _OPAQUE)]
        if slashes:
            rxs.append(("relative", _RELATIVE))
        if "." in word:
            rxs.append(("bare", _BARE))
        for kind, rx in rxs:
            found += [(kind, _trim(m.group(0))) for m in rx.finditer(word)]
    return found


def _resolve(kind: str, candidate: str) -> UrlRef | None:
    if kind == "absolute":
        return parse(candidate)
    if kind == "relative":
        ref = parse(candidate, base=_BASE)
        if ref.error:
            return ref
        keep = ref.kind in ("ipv4", "ipv6") or "." in ref.host or ref.host == "localhost"
        return ref if keep and ref.host != "relative.invalid" else None
    ref = parse("http://" + candidate)
    if ref.error or ref.kind in ("ipv4", "ipv6"):
        return ref
    return ref if _known_suffix(ref.host) else None


def _may_hold_url(text: str) -> bool:
    return not text.isascii() or any(c in text for c in ":/\\?#")


@text_cache(maxsize=8192)
def urls_in_text(text: str) -> tuple[UrlRef, ...]:
    """Every URL in ``text`` (see the module docstring), sorted, without duplicates."""
    if not _may_hold_url(text):
        return ()
    views = {text, visible(text)}
    views |= {v.translate(_NEWLINES) for v in views if any(c in v for c in "\t\n\r")}
    seen: dict[str, UrlRef] = {}
    for view in views:
        for kind, candidate in _candidates(view):
            ref = _resolve(kind, candidate)
            if ref is not None:
                seen.setdefault(ref.url, ref)
    return tuple(sorted(seen.values()))


def normalise_host(host: str) -> str:
    """An allow-list entry as the parser would resolve it (IDNA, lower case, no dot)."""
    ref = parse(f"https://{host.strip()}/")
    return ref.host if not ref.error else host.strip().lower().rstrip(".")


def host_allowed(ref: UrlRef, allowed: tuple[str, ...]) -> bool:
    """The host is allow-listed or a subdomain of an allow-listed domain (IPs exactly)."""
    if not ref.host or ref.error:
        return False
    hosts = {normalise_host(a) for a in allowed}
    if ref.host in hosts:
        return True
    return ref.kind == "domain" and any(ref.host.endswith("." + h) for h in hosts if h)
