"""What a JSON value carries that the audit gate judges: markers, URLs and grants.

:func:`scan` walks *every* string of a value — object keys as well as values, at any
depth, whatever the patch type — and reports, each with the JSON Pointer where it was
found:

- prompt-injection markers, matched on the visual skeleton (:mod:`textfold`), the
  strings read in order as one text so a marker split across two of them still counts;
- URLs, resolved as a browser would (:mod:`urls`);
- capability grants: the items under any key that names a grant (``tools``,
  ``permissions``, ``scopes`` … also ``allowed_tools``, ``agentPermissions`` or a key
  spelled with look-alike letters), at any depth, and the items of a ``tools`` value.

It decides nothing: the audit policy (Rego) does, from these facts. The walk is
iterative, so a deeply nested value cannot exhaust the stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ouroboros.kernel.markers import find_markers
from ouroboros.kernel.textfold import fold_tokens, text_cache
from ouroboros.kernel.urls import UrlRef, urls_in_text

#: Keys whose items are capabilities granted to someone (compared on the folded key,
#: which must end with one of these: ``allowed_tools``, ``agentPermissions`` …).
GRANT_WORDS: tuple[str, ...] = (
    "tool", "tools", "extensions", "permissions", "scopes", "capabilities", "grants",
    "allowedpaths", "alloweddomains", "allowlist", "webhooks", "endpoints",
)


@dataclass(frozen=True, order=True)
class Injection:
    marker: str
    where: str  # JSON Pointer of the string (``#key`` when it is an object key)


@dataclass(frozen=True, order=True)
class Grant:
    where: str  # JSON Pointer of the granting key
    name: str

    def __str__(self) -> str:
        return f"{self.name} (at {self.where or '/'})"


@dataclass(frozen=True)
class Findings:
    injections: tuple[Injection, ...] = ()
    urls: tuple[UrlRef, ...] = ()
    grants: frozenset[Grant] = field(default_factory=frozenset)


def _pointer(parent: str, key: str | int) -> str:
    key = str(key)
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return f"{parent}/{key}"


def strings_and_grants(value: Any, *, root_is_grant: bool = False
                       ) -> tuple[list[tuple[str, str]], frozenset[Grant]]:
    """Every string in ``value`` as (pointer, text), keys included, in document order, and
    every capability grant in it (``root_is_grant`` for a ``tools`` value), in one walk:
    the audit gate needs both of every new value."""
    texts: list[tuple[str, str]] = []
    found: set[Grant] = set()
    if root_is_grant:
        found |= {Grant("", n) for n in _names(value)}
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            texts.append((where, node))
        elif isinstance(node, dict):
            children = []
            for k, v in node.items():
                at = _pointer(where, k)
                key = str(k)
                texts.append((f"{at}#key", key))
                if is_grant_key(key):
                    found |= {Grant(at, n) for n in _names(v)}
                children.append((at, v))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend(reversed([(_pointer(where, i), v) for i, v in enumerate(node)]))
    return texts, frozenset(found)


@text_cache(maxsize=4096)
def is_grant_key(key: str) -> bool:
    """``key`` names a grant once folded (``Tools``, ``allowed-tools``, ``tооls``)."""
    compact = "".join(fold_tokens(key))
    return any(compact.endswith(word) for word in _folded_grant_words())


@lru_cache(maxsize=1)
def _folded_grant_words() -> tuple[str, ...]:
    return tuple("".join(fold_tokens(w)) for w in GRANT_WORDS)  # "permissions": "perrnissions"


def _names(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list | tuple):
        return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value]
    if value in (None, False, "", 0):
        return []
    return [value if isinstance(value, str) else json.dumps(value)]


def strings(value: Any) -> Iterator[tuple[str, str]]:
    """(pointer, text) of every string in ``value``, keys included, in document order."""
    return iter(strings_and_grants(value)[0])


def grants(value: Any, *, root_is_grant: bool = False) -> frozenset[Grant]:
    """Every capability grant in ``value``; ``root_is_grant`` for a ``tools`` value."""
    return strings_and_grants(value, root_is_grant=root_is_grant)[1]


def injections(texts: list[tuple[str, str]], markers: Iterable[str]) -> tuple[Injection, ...]:
    """Markers in the texts (read as one), each with the pointer where it starts."""
    hits = find_markers([t for _, t in texts], markers)
    return tuple(sorted({Injection(h.marker, texts[h.index][0]) for h in hits}))


def urls(texts: Iterable[str]) -> tuple[UrlRef, ...]:
    found: dict[str, UrlRef] = {}
    for text in texts:
        for ref in urls_in_text(text):
            found.setdefault(ref.url, ref)
    return tuple(sorted(found.values()))


def scan(value: Any, markers: Iterable[str] = (), *, grant_root: bool = False) -> Findings:
    """Markers, URLs and grants anywhere in ``value`` (any JSON value).

    Args:
        value: the value to read (keys and values at any depth).
        markers: the phrases to look for (e.g. the ``audit.injection_markers`` config).
        grant_root: the value itself is a list of granted names (a ``tools`` value).
    Returns:
        The findings; an empty :class:`Findings` for a value with nothing to report.
    """
    texts, granted = strings_and_grants(value, root_is_grant=grant_root)
    return Findings(injections(texts, markers), urls(t for _, t in texts), granted)
