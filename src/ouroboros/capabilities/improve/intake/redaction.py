"""Default-deny redaction of free text, with a cache for the common case.

``Redactor(policy).redact(text)`` keeps what analysis needs — words, identifiers, small
numbers, durations and sizes, status codes, error codes, tool names, host names — and
replaces everything else with a typed placeholder (:mod:`placeholders`). The work is
done by the full scan (:mod:`scanner`); this module adds a per-chunk cache in front of
it, because telemetry repeats the same few words and numbers.

Input must already be folded (:func:`unicode_fold.fold`); the sanitizer does that.
"""

from __future__ import annotations

import re
from collections import Counter

from ouroboros.capabilities.improve.intake import secret_rules as rules
from ouroboros.capabilities.improve.intake import token_shapes as shapes
from ouroboros.capabilities.improve.intake.placeholders import (
    KNOWN_PLACEHOLDERS,
    family,
    fold_placeholders,
)
from ouroboros.capabilities.improve.intake.plain_tokens import classify
from ouroboros.capabilities.improve.intake.scanner import RedactionPolicy, Scan, split_point

__all__ = [
    "KNOWN_PLACEHOLDERS",
    "RedactionPolicy",
    "Redactor",
    "classify",
    "fold_placeholders",
    "redact",
]


def redact(text: str, policy: RedactionPolicy, counts: Counter[str] | None = None) -> str:
    """The default-deny form of (already folded) ``text``; ``counts`` gets one per redaction."""
    return Redactor(policy).redact(text, counts)


# Chunk flags for the fast path (see Redactor.redact).
_CONTEXTUAL = 1  # its treatment may depend on the chunks around it
_STARTS_NUMERIC = 2  # may continue a run of digit groups ("4111 1111 …", "(555) 123-4567")
_ENDS_NUMERIC = 4  # may be continued by the next chunk
_UNIT = 8  # starts with a unit: "30 s", "4100 ms" are durations
_PLAIN_NUMBER = 16  # what a duration starts with
_UNIT_PREFIX = re.compile(
    r"(?:ns|us|µs|μs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|weeks?"
    r"|[KMGTP]i?B|[kmgt]b|bytes?|B|%|x)(?!\w)"
)
_UNIT_CHUNK = re.compile(_UNIT_PREFIX.pattern + r"[.,;:!?)\]}]*")
_DURATION_NUMBER = re.compile(r"\d{1,6}(?:[.,]\d{1,6})?")
_CHUNK_CACHE = 65536
_OBFUSCATION_MARKS = ("at]", "at)", "at}", "at>", "@]", "@)", "dot]", "dot)", "dot}", "dot>")


class Redactor:
    """``redact`` for one policy, with a cache of whitespace-separated chunks.

    Most chunks of most messages ("Upstream", "returned", "500", "ms") are redacted the
    same way wherever they stand, so a text made only of such chunks is assembled from
    cached per-chunk results. A chunk whose treatment can depend on its neighbours (a
    secret's name, an auth scheme, a quote, ``at``/``[dot]``, digits next to digits,
    ``-----BEGIN`` …) sends the whole text through the full scan. That both paths give
    the same text and counts on every input is a property test.
    """

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._chunks: dict[str, tuple[str, tuple[tuple[str, int], ...], int]] = {}

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        counts = counts if counts is not None else Counter()
        if not text.isprintable():  # tabs, newlines, line separators: the full scan
            return self.scan(text, counts)
        pieces = text.split(" ")  # a run of spaces leaves empty pieces
        cache = self._chunks
        out: list[str] = []
        found: list[tuple[tuple[str, int], ...]] = []
        previous = 0  # flags of the chunk right before this one (0 after a gap)
        for i, piece in enumerate(pieces):
            if not piece:
                out.append(piece)
                previous = 0
                continue
            entry = cache.get(piece)
            if entry is None:
                entry = self._chunk(piece)
            replacement, chunk_counts, flags = entry
            if flags:
                if flags & _CONTEXTUAL:
                    return self.scan(text, counts)
                if previous & _ENDS_NUMERIC and flags & (_STARTS_NUMERIC | _UNIT):
                    if not (previous & _PLAIN_NUMBER and flags & _UNIT):
                        return self.scan(text, counts)
                    out[i - 1] = pieces[i - 1]  # "4100 ms": a duration, kept whole
            previous = flags
            out.append(replacement)
            if chunk_counts:
                found.append(chunk_counts)
        for chunk_counts in found:
            for name, n in chunk_counts:
                counts[name] += n
        return " ".join(out)

    def scan(self, text: str, counts: Counter[str]) -> str:
        """The full left-to-right scan (always right; the chunk path is a shortcut)."""
        return Scan(text, self.policy, counts).run()

    def _chunk(self, chunk: str) -> tuple[str, tuple[tuple[str, int], ...], int]:
        """A chunk scanned on its own, with its flags; cached (numbers are not: they vary)."""
        if chunk.isdigit() and chunk.isascii():  # the commonest miss: a request id, a count
            n = len(chunk)
            label = (
                None if n <= 3 else "card" if 13 <= n <= 19 and shapes.luhn_valid(chunk) else "n"
            )
            flags = _STARTS_NUMERIC | _ENDS_NUMERIC | (_PLAIN_NUMBER if n <= 6 else 0)
            if label is None:
                return chunk, (), flags
            name = family(label)
            return f"<{label}>", ((name, 1),) if name else (), flags
        counts: Counter[str] = Counter()
        scan = Scan(chunk, self.policy, counts)
        replacement = scan.run()
        flags = _chunk_flags(chunk) | (_CONTEXTUAL if scan.open_end or scan.echoes else 0)
        entry = replacement, tuple(sorted(counts.items())), flags
        if len(self._chunks) >= _CHUNK_CACHE:
            self._chunks.clear()  # telemetry vocabularies are small; a flood just restarts it
        self._chunks[chunk] = entry
        return entry


def _chunk_flags(chunk: str) -> int:
    lowered = chunk.lower()
    flags = 0
    if chunk[0].isdigit() or (chunk[0] in "+(" and chunk[1:2].isdigit()):
        flags |= _STARTS_NUMERIC
    if chunk[-1].isdigit() or (chunk[-1] == ")" and chunk[-2:-1].isdigit()):
        flags |= _ENDS_NUMERIC
    if _UNIT_CHUNK.fullmatch(chunk):
        flags |= _UNIT
    elif _UNIT_PREFIX.match(chunk):  # "s/x", "m@y": a duration plus more, for the full scan
        flags |= _CONTEXTUAL
    if _DURATION_NUMBER.fullmatch(chunk):
        flags |= _PLAIN_NUMBER
    if (
        not _QUOTES.isdisjoint(chunk)
        or (("<" in chunk or ">" in chunk) and chunk not in KNOWN_PLACEHOLDERS)
        or lowered in ("at", "dot")
        or any(mark in lowered for mark in _OBFUSCATION_MARKS)
        or "-----" in chunk
        or lowered.startswith("putty-user-key-file")
        or lowered in rules.AUTH_SCHEMES
        or lowered.rsplit("/", 1)[-1] in rules.PASSWORD_COMMANDS
        or chunk in rules.PASSWORD_FLAGS
        or lowered in ("-u", "--user")
        or _names_a_secret_without_value(chunk)
    ):
        flags |= _CONTEXTUAL
    return flags


_QUOTES = frozenset("\"'`")


def _names_a_secret_without_value(chunk: str) -> bool:
    """``password``, ``token:``, ``api_key=``: the value (if any) is in a later chunk."""
    if split_point(chunk)[0] > 0:  # "password=hunter2": name and value in this chunk
        return False
    bare = chunk.rstrip(":=")
    return bool(bare) and rules.key_label(bare) is not None

