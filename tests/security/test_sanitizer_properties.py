"""Properties of the sanitizer, for inputs nobody wrote down (hypothesis)."""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.intake.redaction import RedactionPolicy, Redactor
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer
from ouroboros.capabilities.improve.intake.unicode_fold import fold

from .secrets_corpus import contexts, load_kinds, make_secret

KINDS = load_kinds()
SANITIZER = Sanitizer()
_PLACEHOLDER = re.compile(r"<[a-z]+(?::[a-z0-9\-]+)?>")
# What can stand between a logged secret and the text around it.
SEPARATORS = (" ", "\n", "\t", ": ", "=", '"', "'", "(", ")", "[", "]", ", ", "; ", " | ", "\r\n")
_TRICKY = (
    "ab", "AKIA", "0123456789", " ", "  ", ".", ":", "/", "@", "-", "_", "=", "+", "~", "\\",
    '"', "'", "(", "<", ">", ")", "[", "]", "{", "}", "key", "pass", "token", "password",
    "Bearer", "-p", "-u", "curl", "sshpass", "BEGIN", "-----", "at", "dot", "[at]", "ms", "s",
    "4111", "(555)", "\n", "\t", "1", "22", "333", "4444", "<n>", "<secret:password>",
    "%40", "&#64;", "2026-01-10", "14:32", "10.0.0.1", "::1", "ghp_", "0x1F", "é", "\u200b",
    "\u0430", "\uff20", "sk-", "http://", "C:\\", "\\\\",
)  # fmt: skip
tricky_text = st.lists(st.sampled_from(_TRICKY), max_size=16).map("".join)
any_text = st.text(st.characters(codec=None, categories=None), max_size=120)
settings.register_profile("sanitizer", max_examples=300, deadline=None)


def _leaks(core: str, around: str, out: str) -> list[str]:
    visible = _PLACEHOLDER.sub(" ", out)
    windows = {core[i : i + 8] for i in range(max(1, len(core) - 7))}
    return [w for w in windows if w in visible and w not in around]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(KINDS)),
    seed=st.integers(0, 2**32),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    left=st.sampled_from(SEPARATORS),
    right=st.sampled_from(SEPARATORS),
)
def test_an_inserted_secret_never_survives(
    kind: str, seed: int, before: str, after: str, left: str, right: str
) -> None:
    """A fresh secret of any kind, logged in any context amid arbitrary text, is gone."""
    secret = make_secret(KINDS[kind], random.Random(seed))
    where, context = random.Random(seed).choice(list(contexts(secret, KINDS[kind])))
    text = before + left + context + right + after
    out = SANITIZER.text(text)
    around = fold(before + left + context.replace(secret.text, " ") + right + after)
    assert not _leaks(secret.secret, around, out), (kind, where, out)


@settings(max_examples=300, deadline=None)
@given(st.one_of(any_text, tricky_text))
@example("A0://0008:0000")  # a replaced host kept its port, then lost it on the next pass
@example("A0://0008:1234567")  # a "port" too long to be one
@example("@0.0.0.0.0000")  # folded to "@0.0.0.0.<n>", whose first piece then held an address
@example("redis://default:s3cretPassw0rd@cache.internal:6379/0 refused")  # the port, read again
@example("pass:http://:ms")  # a second look named the value a password
@example("password\t14:3214:3214:32")
@example('-u""\u0430%40"ghp_14:32-p')  # a Cyrillic letter the first pass kept
@example('-u"["\u0430 "" ""')  # each pass dropped a quote of the -u user (fuzz_sanitizer)
def test_sanitizing_is_idempotent(text: str) -> None:
    once = SANITIZER.text(text)
    assert SANITIZER.text(once) == once


@settings(max_examples=300, deadline=None)
@given(st.one_of(any_text, tricky_text))
def test_nothing_raises_and_the_result_can_be_stored(text: str) -> None:
    out = SANITIZER.text(text)
    out.encode("utf-8")  # no lone surrogates: the store writes UTF-8
    assert not any(unicodedata.category(c) == "Cf" for c in out)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_sanitized_not_rejected(data: bytes) -> None:
    out = SANITIZER.text(data)
    assert isinstance(out, str)
    out.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.one_of(any_text, tricky_text))
def test_folding_is_idempotent_and_leaves_no_format_characters(text: str) -> None:
    once = fold(text)
    assert fold(once) == once
    assert not any(unicodedata.category(c) in ("Cf", "Cs") for c in once)


@settings(max_examples=500, deadline=None)
@given(st.one_of(tricky_text, any_text, st.lists(tricky_text, max_size=4).map(" ".join)))
def test_the_chunk_cache_agrees_with_the_full_scan(text: str) -> None:
    """The fast path (per-chunk cache) is only a shortcut: same text, same counts."""
    redactor = Redactor(RedactionPolicy(path_prefixes=("/opt/ouro/",)))
    text = fold(text)
    fast, slow = Counter[str](), Counter[str]()
    assert redactor.redact(text, fast) == redactor.scan(text, slow)
    assert fast == slow


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(("ghp_", "AKIA", "a" * 30, "1" * 20, "x@y.z")), max_size=30))
def test_placeholders_cannot_be_forged_to_smuggle_text(pieces: list[str]) -> None:
    """``<secret:anything>`` is only kept if ``anything`` is one of our labels."""
    smuggled = "".join(f"<secret:{p}>" for p in pieces)
    out = SANITIZER.text(smuggled)
    for piece in pieces:
        if len(piece) >= 4 and piece not in ("x@y.z",):
            assert f"<secret:{piece}>" not in out
