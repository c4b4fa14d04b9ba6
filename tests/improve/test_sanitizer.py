"""The sanitizer: every planted secret goes, ordinary text survives unchanged."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.intake.sanitizer import (
    _MAIN,
    EXTERNAL_IP,
    PATH,
    REDACTED,
    Sanitizer,
    SanitizerPolicy,
    gate,
    generalise_ip,
)
from ouroboros.capabilities.improve.intake.synthetic import (
    SECRET_KINDS,
    planted_secret,
    secret_core,
)

CONTEXTS = (
    "{s}",
    "tool failed: {s}",
    "upstream rejected credentials {s}, retrying",
    'config {{"value": "{s}"}} was rejected',
    "Error while calling api with {s}.",
)

# Ordinary telemetry and prose: nothing here is sensitive, so nothing may change.
CLEAN = (
    "Request timed out after 30s",
    "Rate limited, retry after 2 seconds",
    "Tool web_search returned 0 results",
    "Connection reset by peer",
    "HTTP 503 Service Unavailable",
    "retry 3 of 5 failed; giving up",
    "Version 2.4.1 released with bug fixes",
    "Could not parse tool output as JSON",
    "The agent answered in 1.2 seconds and the user said thanks",
    "Scheduled task rag-refresh finished in 42 minutes",
    "token: expired",
    "The token bucket refilled at 14:32:00 on 2026-01-10",
    "author: EvalAgent",
    "Authentication failed for the current session",
    "password rejected: too short",
    "sha256 digest e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 verified",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 is the base",
    "request id 123e4567-e89b-12d3-a456-426614174000 took 830 ms",
    "std::vector<int> overflowed in the parser",
    "Increase the timeout from 30 to 60 seconds and add one retry",
    "p95 latency rose from 900 ms to 4100 ms (ratio 4.5)",
    "Quota exceeded: 1000 requests per day",
    "The model replied with an empty message",
    "Invalid argument: limit must be between 1 and 100",
    "File not found",
    "Permission denied while opening the cache",
    "Resource temporarily unavailable (errno 11)",
    "error_code=TIMEOUT latency_ms=30000 success=false",
    "key not found in cache",
    "ResearchAgent called fetch_page 12 times in one turn",
    "Disk usage at 91 percent on the data volume",
    "Deadline exceeded while waiting for the queue",
    "Translation finished: 3 paragraphs, 2 tables",
    "The scheduler skipped 1 run because the previous one was still active",
    "Unexpected end of stream after 512 bytes",
    "Database query took 1500 ms, index scan on events",
    "retrying in 250ms (attempt 2/3)",
    "Failed to decode UTF-8 at byte 17",
    "Upstream returned 429 Too Many Requests",
    "OK",
    "",
    "and/or either way, 50/50 chance",
    "Summary: 5 proposals pending, 2 approved, 1 rejected",
    "The secret to stability is fewer moving parts",
    "credentials: missing",
    "Bearer auth is required for this endpoint",
    "ratio 0.25 exceeded threshold 0.2",
    "thumbs up from the user",
    "Model gpt-4o-mini returned finish_reason=length",
    "Queue depth 17, workers 4, backlog growing",
)


def planted_corpus() -> list[tuple[str, str, str]]:
    """(kind, text, secret) for every kind in every context: 125 planted secrets."""
    rng = random.Random(20260110)
    corpus = []
    for kind in SECRET_KINDS:
        for context in CONTEXTS:
            text = planted_secret(kind, rng)
            corpus.append((kind, context.format(s=text), secret_core(kind, text)))
    return corpus


@pytest.fixture(scope="module")
def sanitizer() -> Sanitizer:
    return Sanitizer()


def test_corpus_is_big_and_varied() -> None:
    corpus = planted_corpus()
    assert len(corpus) >= 100
    assert len({kind for kind, _, _ in corpus}) >= 15


@pytest.mark.parametrize(("kind", "text", "secret"), planted_corpus(), ids=lambda v: str(v)[:30])
def test_every_planted_secret_is_redacted(
    sanitizer: Sanitizer, kind: str, text: str, secret: str
) -> None:
    out = sanitizer.text(text)
    assert secret not in out, f"{kind} leaked"
    assert REDACTED in out
    # no 8-character window of the secret survives either (partial leaks count)
    windows = {secret[i : i + 8] for i in range(0, max(1, len(secret) - 7))}
    assert not [w for w in windows if len(w) == 8 and w in out]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_survives_unchanged(sanitizer: Sanitizer, text: str) -> None:
    assert sanitizer.text(text) == text


def test_detect_secrets_layer_catches_what_the_own_rules_miss() -> None:
    text = "artifactory token AKCp8jQ8NyWdC5 rejected"
    assert Sanitizer(SanitizerPolicy(use_detect_secrets=False)).text(text) == text
    assert Sanitizer().text(text) == f"artifactory token {REDACTED} rejected"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.1.2.3", "10.1.x.x"),
        ("192.168.44.7", "192.168.x.x"),
        ("172.20.3.4", "172.20.x.x"),
        ("127.0.0.1", "127.0.x.x"),
        ("8.8.8.8", EXTERNAL_IP),
        ("151.101.1.69", EXTERNAL_IP),
        ("fd12:3456:789a::1", "fd12:3456:x:x:x:x:x:x"),
        ("fe80::1", "fe80:0:x:x:x:x:x:x"),
        ("2001:4860:4860::8888", EXTERNAL_IP),
        ("::ffff:10.9.8.7", "10.9.x.x"),
        ("010.001.002.003", "10.1.x.x"),
        ("08.08.08.08", EXTERNAL_IP),
        ("999.1.1.1", "999.1.1.1"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_ip_generalisation(address: str, expected: str) -> None:
    assert generalise_ip(address) == expected


def test_ips_in_text_keep_ports_and_punctuation(sanitizer: Sanitizer) -> None:
    out = sanitizer.text(
        "connect 10.0.5.6:5432 failed, fallback 8.8.4.4. Also 2606:4700:4700::1111 down"
    )
    assert out == f"connect 10.0.x.x:5432 failed, fallback {EXTERNAL_IP}. Also {EXTERNAL_IP} down"


def test_urls_keep_only_the_domain_unless_allow_listed() -> None:
    s = Sanitizer(SanitizerPolicy(url_prefixes=("docs.example.org/guide/",)))
    assert s.text("GET https://api.example.com/v1/users/42?email=a@b.c failed") == (
        "GET https://api.example.com failed"
    )
    assert s.text("see https://docs.example.org/guide/timeouts?x=1.") == (
        "see https://docs.example.org/guide/timeouts."
    )
    assert s.text("see https://docs.example.org/private/notes") == "see https://docs.example.org"
    assert s.text("db https://10.0.0.9:8443/admin") == "db https://10.0.x.x:8443"
    assert s.text("v6 http://[fd00:1:2::9]:8080/x") == "v6 http://[fd00:1:x:x:x:x:x:x]:8080"


def test_credentials_in_urls_are_redacted(sanitizer: Sanitizer) -> None:
    out = sanitizer.text("redis://default:s3cretPassw0rd@cache.internal:6379/0 refused")
    assert out == f"redis://{REDACTED}@cache.internal:6379 refused"


def test_paths_outside_the_allow_list_are_cut() -> None:
    s = Sanitizer(SanitizerPolicy(path_prefixes=("/opt/ouro/",)))
    assert s.text("read /opt/ouro/agents/agents.yaml ok") == "read /opt/ouro/agents/agents.yaml ok"
    assert s.text("read /home/alice/tax-2025.pdf failed") == f"read {PATH} failed"
    assert s.text(r"open C:\Users\bob\notes.txt: denied") == f"open {PATH}: denied"
    assert s.text("cache ~/.cache/ouro/x missing") == f"cache {PATH} missing"


def test_emails_are_removed(sanitizer: Sanitizer) -> None:
    assert sanitizer.text("sent to alice.smith@example.co.uk") == "sent to [EMAIL]"


def test_keyword_assignments_keep_the_key(sanitizer: Sanitizer) -> None:
    assert sanitizer.text('{"api_key": "zQ9xW2vR7tY5uI3o"}') == f'{{"api_key": "{REDACTED}"}}'
    assert sanitizer.text("DB_PASSWORD=correct horse") == f"DB_PASSWORD={REDACTED} horse"


def test_session_ids_are_pseudonymised_consistently(sanitizer: Sanitizer) -> None:
    a = sanitizer.event({"timestamp": "2026-01-10T00:00:00.000Z", "session_id": "abc"})
    b = sanitizer.event({"timestamp": "2026-01-10T00:00:00.000Z", "session_id": "abc"})
    assert a["session_id"] == b["session_id"] != "abc"
    assert sanitizer.event(a)["session_id"] == a["session_id"]  # idempotent


_TRICKY = "abcxyzAKIQ0123456789.:/@-_=+ ~\\keytoBEGINsk"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_TRICKY, max_size=60) | st.text(max_size=60))
def test_text_the_gate_passes_over_is_never_rewritten(text: str) -> None:
    """The cheap gate is sound: when it sees nothing, no rule would change anything."""
    if gate(text):
        return
    s = Sanitizer()
    for match in _MAIN.finditer(text):
        assert s._replace(match, Counter()) == match.group()
    assert s._detect_secrets(text, Counter()) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.sampled_from(SECRET_KINDS), st.integers(0, 10**6))
def test_secrets_go_whatever_surrounds_them(prefix: str, kind: str, seed: int) -> None:
    text = planted_secret(kind, random.Random(seed))
    out = Sanitizer().text(f"{prefix} {text} ")
    assert secret_core(kind, text) not in out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_sanitizing_is_idempotent(text: str) -> None:
    s = Sanitizer()
    once = s.text(text)
    assert s.text(once) == once
