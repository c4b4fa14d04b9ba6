"""The labelled secrets corpus: every kind, bare and in six contexts, is redacted.

The corpus (``data/secrets/``) holds real-format secrets of 300 kinds derived from
gitleaks' rule set and detect-secrets' plugins and tests, plus the cases the issue
names (keys in every separator style, CLI passwords, encoded and Unicode-split tokens,
addresses in every notation, obfuscated e-mails, cards, phones, SSNs). A secret
counts as leaked if any 8-character window of it survives (a partial leak is a leak),
placeholders aside.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from ouroboros.capabilities.improve.analysis.aggregate import _pattern_of
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

from .secrets_corpus import Secret, build_corpus, contexts, load_corpus, load_harmless, load_kinds

KINDS = load_kinds()
CORPUS = load_corpus()
BY_KIND: dict[str, list[Secret]] = {}
for _secret in CORPUS:
    BY_KIND.setdefault(_secret.kind, []).append(_secret)
_PLACEHOLDER = re.compile(r"<[a-z]+(?::[a-z0-9\-]+)?>")
# The named cases, each a kind of its own.
NAMED_CASES = (
    "keyed-password-equals", "keyed-password-json", "keyed-password-xml", "keyed-password-flag",
    "keyed-password-is", "mysql-cli-password", "curl-user-password", "hex-encoded-token",
    "zero-width-split-token", "lowercase-aws-access-key", "ipv4-decimal", "ipv4-hex",
    "unc-path", "email-at-dot", "email-bracketed", "card-visa", "phone-us", "ssn-us",
)  # fmt: skip


@pytest.fixture(scope="module")
def sanitizer() -> Sanitizer:
    return Sanitizer()


def leaked(secret: Secret, text: str, out: str) -> list[str]:
    """8-character windows of the secret found in the output (not from the context)."""
    visible = _PLACEHOLDER.sub(" ", out)
    context = text.replace(secret.text, " ")
    core = secret.secret
    windows = {core[i : i + 8] for i in range(max(1, len(core) - 7))}
    return sorted(w for w in windows if w in visible and w not in context)


def test_the_corpus_is_big_varied_and_sourced() -> None:
    assert len(CORPUS) >= 400
    assert len(BY_KIND) >= 100 and set(BY_KIND) == set(KINDS)
    assert all(len(secrets) >= 3 for secrets in BY_KIND.values())
    assert all(kind["source"] for kind in KINDS.values())
    assert set(NAMED_CASES) <= set(KINDS)
    by_source = Counter(kind["source"].split(" ")[0] for kind in KINDS.values())
    assert by_source["gitleaks/gitleaks"] >= 150  # most formats come from the public rule set


def test_the_committed_corpus_is_what_the_generator_makes() -> None:
    generated = build_corpus(list(KINDS.values()))
    assert [s.text for s in generated] == [s.text for s in CORPUS]


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_every_kind_is_redacted_bare_and_in_context(sanitizer: Sanitizer, kind: str) -> None:
    spec = KINDS[kind]
    for secret in BY_KIND[kind]:
        for where, text in contexts(secret, spec):
            out = sanitizer.text(text)
            assert not leaked(secret, text, out), f"{kind} leaked {where}: {out!r}"
            assert out != text, f"{kind} {where}: nothing replaced"
        if spec.get("label") and secret.source == spec["source"]:
            bare = sanitizer.text(secret.text)
            assert f"<{spec['label']}" in bare, f"{kind} labelled wrongly: {bare!r}"


def test_the_corpus_recall_is_complete_over_all_contexts(sanitizer: Sanitizer) -> None:
    checks = [
        bool(leaked(secret, text, sanitizer.text(text)))
        for secret in CORPUS
        for _, text in contexts(secret, KINDS[secret.kind])
    ]
    assert len(checks) >= 400 * 7 and not any(checks)


def test_fresh_values_of_every_kind_are_redacted_too(sanitizer: Sanitizer) -> None:
    """Not only the committed values: a new draw of each format (another seed)."""
    fresh = build_corpus(list(KINDS.values()), seed=random.Random(7).randrange(2**32))
    misses = [
        (s.kind, where)
        for s in fresh
        for where, text in contexts(s, KINDS[s.kind])
        if leaked(s, text, sanitizer.text(text))
    ]
    assert misses == []


def test_harmless_text_is_kept(sanitizer: Sanitizer) -> None:
    """Over-redaction has a price too: the analysis needs the words of error messages."""
    lines = load_harmless()
    assert len(lines) >= 300
    kept = total = unchanged = same_template = 0
    for line in lines:
        out = sanitizer.text(line)
        remaining = Counter(out.split())
        for word in line.split():
            total += 1
            if remaining[word] > 0:
                kept += 1
                remaining[word] -= 1
        unchanged += out == line
        same_template += _pattern_of(out) == _pattern_of(line)
    assert kept / total >= 0.98
    assert unchanged / len(lines) >= 0.95
    assert same_template / len(lines) >= 0.95
