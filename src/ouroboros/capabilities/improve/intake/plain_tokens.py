"""What a plain token becomes: kept, numbers folded to ``<n>``, or one placeholder.

A *plain* token is a run of non-space, non-delimiter characters that no structure
claimed (no URL, address, path or name=value). It is split into parts (runs of
letters and digits); it is kept only if every part is a word, an identifier piece, a
small number or a known shape (``python3``, ``4o``, ``k8s``, ``E11000``), and the parts
do not together look generated. Long numbers are folded in place (``req-<n>``);
anything else replaces the whole token, labelled by our rules, by detect-secrets'
plugins (in the scanner), or by shape (``<uuid>``, ``<hex>``, ``<secret:high-entropy>``,
``<token>``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from ouroboros.capabilities.improve.intake import secret_rules as rules
from ouroboros.capabilities.improve.intake import token_shapes as shapes

TRAILING = ".,;:!?)]}'\""  # punctuation that ends a sentence, not a token
_PART = re.compile(r"[^\W_]+")
_PORT = re.compile(r":\d{1,5}")
_ADDRESS_INSIDE = re.compile(
    r"[^\W_]@[^\W_]|[A-Za-z]://|(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.])"
)
_SYMBOLS = frozenset("!$%^*~+?&#@")


@lru_cache(maxsize=65536)
def classify(token: str) -> tuple[str, str | None]:
    """A plain token (no key, no URL): its replacement and the label (None when kept)."""
    core = token.rstrip(TRAILING)
    trail = token[len(core) :]
    if not core:
        return token, None
    label = rules.rule_label(core)
    if label is not None:
        return f"<secret:{label}>{trail}", f"secret:{label}"
    if _PORT.fullmatch(core):  # ":5432" after an address placeholder
        return token, None
    if _ADDRESS_INSIDE.search(core):
        # an address inside a token that no structure matched (glued to other text)
        return f"<token>{trail}", "token"
    parts = [(m.group(), m.start(), m.end()) for m in _PART.finditer(core)]
    kinds = [shapes.part_kind(p) for p, _, _ in parts]
    if "bad" not in kinds and not _suspicious_mix(core, parts):
        if "long-number" not in kinds:
            return token, None
        folded = _numbers_in_place(core, parts, kinds)
        if folded is not None:
            return folded + trail, "n"
    label = rules.decoded_label(core)
    if label is not None:
        return f"<secret:{label}>{trail}", f"secret:{label}"
    label = shapes.blob_label(core)
    return f"<{label}>{trail}", label


def _suspicious_mix(core: str, parts: list[tuple[str, int, int]]) -> bool:
    """Word-shaped pieces that together look generated: several letter+digit pieces, or
    letters, digits and password symbols in one token."""
    mixed = sum(1 for p, _, _ in parts if not p.isalpha() and not p.isdigit())
    alnum = sum(len(p) for p, _, _ in parts)
    if mixed >= 2 and alnum >= 10:
        return True
    if len(core) >= 8 and mixed and not _SYMBOLS.isdisjoint(core):
        return True
    symbols = sum(1 for c in core if c in _SYMBOLS)
    if len(core) >= 8 and symbols >= 3 and any(c.isalpha() for c in core):
        return True  # "&R$^S%+in$va": a password, whatever its letters spell
    return (
        len(core) >= 8
        and symbols >= 2
        and any(c.isdigit() for c in core)
        and any(c.isalpha() for c in core)
    )


def _numbers_in_place(core: str, parts: list[tuple[str, int, int]], kinds: list[str]
                      ) -> str | None:
    """``core`` with its long numbers folded (``req-<n>``), or None when that would not be
    a fixed point: the next pass reads each piece between two placeholders as a token of
    its own, so every piece must be kept as it is there too ("@0.0.0.0.0000" would become
    "@0.0.0.0.<n>", whose "@0.0.0.0." holds an address: the token goes whole instead)."""
    out, pieces, at = [], [], 0
    for (part, start, end), kind in zip(parts, kinds, strict=True):
        if kind == "long-number":
            pieces.append(core[at:start])
            out.append(core[at:start])
            label = shapes.number_label(part) or "n"
            out.append(f"<{label}>")
            at = end
    pieces.append(core[at:])
    out.append(core[at:])
    if any(piece and classify(piece)[1] is not None for piece in pieces):
        return None
    return "".join(out)


