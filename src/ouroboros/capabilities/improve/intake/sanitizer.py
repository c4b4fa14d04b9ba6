"""The sanitizer: nothing reaches telemetry storage until it has passed through here.

Default-deny for free text. Analysis needs error *templates* — words, error codes,
tool names, durations, status codes — not the values in them, so every token that
could carry a credential or a person's data is replaced by a typed placeholder
(``<secret:github-pat>``, ``<email>``, ``<ip>``, ``<n>`` …) whether or not a rule
recognises it. Rules (:mod:`secret_rules`, and detect-secrets' plugins as a second
opinion) only name what is replaced.

Two steps, each pure:

1. :func:`unicode_fold.fold` — strip format characters and controls, NFKC, map
   look-alike letters — so zero-width-split or full-width secrets look like themselves;
2. :class:`redaction.Redactor` — one left-to-right scan that keeps what analysis
   needs and types everything else (with a per-chunk cache for the common case).

Results are memoised: telemetry repeats itself (tool names, agents, error texts), so
the cache turns most calls into one dictionary lookup.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ouroboros.capabilities.improve.intake.events import MAX_MESSAGE, NAME_FIELDS, cut_text, is_name
from ouroboros.capabilities.improve.intake.placeholders import PLACEHOLDER_RE
from ouroboros.capabilities.improve.intake.redaction import (
    KNOWN_PLACEHOLDERS,
    RedactionPolicy,
    Redactor,
    fold_placeholders,
)
from ouroboros.capabilities.improve.intake.secret_rules import DetectSecretsLabeller
from ouroboros.capabilities.improve.intake.unicode_fold import fold

__all__ = [
    "KNOWN_PLACEHOLDERS",
    "Redactions",
    "Sanitizer",
    "SanitizerPolicy",
    "fold_placeholders",
]

DEFAULT_PATH_PREFIXES = (
    "/opt/ouro/",
    "/opt/jarvis/",
    "/usr/lib/python3",
    "/usr/local/lib/python3",
    "/etc/ouro/",
)
DEFAULT_URL_PREFIXES: tuple[str, ...] = ()

#: Event fields never rewritten: validated enums, numbers and hex ids.
_STRUCTURAL = frozenset(
    {
        "timestamp",
        "event_type",
        "success",
        "latency_ms",
        "retry_count",
        "rating",
        "severity",
        "trace_id",
        "span_id",
    }
)

#: Placeholders that say only "this token looks generated" (default-deny by shape, with no
#: rule naming a secret or a person's data). A name is not free text: ``b64tool``,
#: ``sha256sum`` and ``gpt4o-mini`` are what analysis groups by, and are kept.
_SHAPE_ONLY = frozenset({"<token>", "<n>", "<time>"})
#: Passes of the scanner at most (the second almost always finds nothing to do).
MAX_PASSES = 4


@dataclass(frozen=True)
class SanitizerPolicy:
    """What may survive: allow-listed path prefixes and URL prefixes (host + path)."""

    path_prefixes: tuple[str, ...] = DEFAULT_PATH_PREFIXES
    url_prefixes: tuple[str, ...] = DEFAULT_URL_PREFIXES
    session_salt: str = "ouro-telemetry"
    use_detect_secrets: bool = True  # detect-secrets' plugins label what our rules cannot


@dataclass
class Redactions:
    """How many things of each kind the sanitizer removed (reported by ``ingest``)."""

    counts: Counter[str] = field(default_factory=Counter)


class Sanitizer:
    """Rewrites text and events so they can be stored; see the module docstring."""

    def __init__(self, policy: SanitizerPolicy | None = None) -> None:
        self.policy = policy or SanitizerPolicy()
        labeller = DetectSecretsLabeller() if self.policy.use_detect_secrets else None
        self._redactor = Redactor(
            RedactionPolicy(
                path_prefixes=self.policy.path_prefixes,
                url_prefixes=self.policy.url_prefixes,
                labeller=labeller,
            )
        )
        self.text_with_counts = lru_cache(maxsize=65536)(self._text_with_counts)

    # -- text --------------------------------------------------------------------

    def text(self, text: str | bytes) -> str:
        """The sanitized form of ``text`` (bytes are decoded as UTF-8, errors replaced)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self.text_with_counts(text)[0]

    def _text_with_counts(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        folded = fold(text)
        counts: Counter[str] = Counter()
        out = self._redactor.redact(folded, counts)
        # A fixed point, whatever the rules: a replacement can change how the text around it
        # reads ("pass:http://:ms" → "pass:http://:<token>", whose value a second look names
        # a password). Sanitizing stored text again must change nothing, and the second look
        # only ever replaces more; known placeholders are not counted twice.
        for _ in range(MAX_PASSES - 1 if out != folded else 0):  # unchanged: a fixed point
            again = self._redactor.redact(fold(out), counts)
            if again == out:
                break
            out = again
        return out, tuple(sorted(counts.items()))

    def name(self, value: str) -> str:
        """A tool, agent or task name, or an error code: kept verbatim unless the scan
        names something in it (a secret's format, a high-entropy blob, an address, a
        path, a card number …), in which case it is sanitized like text.

        Only name-shaped values qualify (``events.is_name``): free text in a name field
        is sanitized as text.
        """
        return self._name_with_counts(value)[0]

    def _name_with_counts(self, value: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        clean, counts = self.text_with_counts(value)
        if clean == value or not is_name(value):
            return clean, counts
        if _SHAPE_ONLY.issuperset(PLACEHOLDER_RE.findall(clean)):
            return value, ()  # only guessed from its shape: a name is allowed to look odd
        return clean, counts

    # -- events ------------------------------------------------------------------

    def pseudonym(self, session_id: str) -> str:
        """Session ids can be bearer credentials: keep them countable, not usable."""
        digest = hashlib.sha256(f"{self.policy.session_salt}:{session_id}".encode()).hexdigest()
        return "s-" + digest[:16]

    def event(
        self, event: Mapping[str, Any], redactions: Redactions | None = None
    ) -> dict[str, Any]:
        """A copy of a (normalised) event with every free-text field sanitized."""
        out: dict[str, Any] = {}
        for key, value in event.items():
            if key in _STRUCTURAL or not isinstance(value, str):
                out[key] = value
            elif key == "session_id":
                out[key] = (
                    value if value.startswith("s-") and len(value) == 18 else self.pseudonym(value)
                )
            else:
                clean, counts = (
                    self._name_with_counts(value)
                    if key in NAME_FIELDS
                    else self.text_with_counts(value)
                )
                out[key] = cut_text(clean, MAX_MESSAGE) if key == "error_message" else clean
                if redactions is not None:
                    for name, n in counts:
                        redactions.counts[name] += n
        return out

    def events(self, events: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
        for event in events:
            yield self.event(event)
