"""The sanitizer's contract, case by case: what is kept, what becomes which placeholder."""

from __future__ import annotations

import random

import pytest

from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer, SanitizerPolicy
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
    "author: EvalAgent",
    "Authentication failed for the current session",
    "password rejected: too short",
    "std::vector<int> overflowed in the parser",
    "Increase the timeout from 30 to 60 seconds and add one retry",
    "p95 latency rose from 900 ms to 4100 ms (ratio 4.5)",
    "Invalid argument: limit must be between 1 and 100",
    "Resource temporarily unavailable (errno 11)",
    "error_code=TIMEOUT success=false",
    "key not found in cache",
    "ResearchAgent called fetch_page 12 times in one turn",
    "retrying in 250ms (attempt 2/3)",
    "Upstream returned 429 Too Many Requests",
    "OK",
    "",
    "and/or either way, 50/50 chance",
    "The secret to stability is fewer moving parts",
    "credentials: missing",
    "Bearer auth is required for this endpoint",
    "ratio 0.25 exceeded threshold 0.2",
    "Model gpt-4o-mini returned finish_reason=length",
    "Queue depth 17, workers 4, backlog growing",
    "KeyError: 'results'",
    "dial tcp: lookup api.search.example: no such host",
    "ECONNRESET while talking to the upstream",
)


def planted_corpus() -> list[tuple[str, str, str]]:
    """(kind, text, secret) for the synthetic generator's kinds in every context."""
    rng = random.Random(20260110)
    return [
        (kind, context.format(s=text), secret_core(kind, text))
        for kind in SECRET_KINDS
        for context in CONTEXTS
        for text in [planted_secret(kind, rng)]
    ]


@pytest.fixture(scope="module")
def sanitizer() -> Sanitizer:
    return Sanitizer()


@pytest.mark.parametrize(("kind", "text", "secret"), planted_corpus(), ids=lambda v: str(v)[:30])
def test_every_planted_secret_is_redacted(
    sanitizer: Sanitizer, kind: str, text: str, secret: str
) -> None:
    out = sanitizer.text(text)
    assert "<secret" in out or "<token>" in out or "<hex>" in out
    windows = {secret[i : i + 8] for i in range(max(1, len(secret) - 7))}
    assert not [w for w in windows if len(w) == 8 and w in out], f"{kind} leaked"


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_survives_unchanged(sanitizer: Sanitizer, text: str) -> None:
    assert sanitizer.text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Upstream returned 500 (request 481516)", "Upstream returned 500 (request <n>)"),
        ("latency_ms=30000 success=false", "latency_ms=<n> success=false"),
        ("from 900 ms to 4100 ms", "from 900 ms to 4100 ms"),  # durations stay
        ("Quota exceeded: 1000 requests per day", "Quota exceeded: <n> requests per day"),
        ("at 2026-01-10T14:32:07.123Z the job failed", "at <time> the job failed"),
        ("request id 123e4567-e89b-12d3-a456-426614174000", "request id <uuid>"),
        ("digest e3b0c44298fc1c149afbf4c8996fb924 verified", "digest <hex> verified"),
    ],
)
def test_numbers_and_ids_fold_to_placeholders(
    sanitizer: Sanitizer, text: str, expected: str
) -> None:
    assert sanitizer.text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect 10.0.5.6:5432 failed", "connect <ip:private>:5432 failed"),
        ("fallback 8.8.4.4.", "fallback <ip>."),
        ("v6 2606:4700:4700::1111 down", "v6 <ip> down"),
        ("loopback ::1 and 127.0.0.1", "loopback <ip:loopback> and <ip:loopback>"),
        ("padded 010.001.002.003", "padded <ip>"),
        ("octal 0300.0250.0.1 hex 0xc0.0xa8.0x0.0x1", "octal <ip:private> hex <ip:private>"),
        ("mapped ::ffff:10.9.8.7", "mapped <ip:private>"),
        ("decimal host http://3232235777/admin", "decimal host http://<ip:private>"),
        ("hex host http://0x08080808/", "hex host http://<ip>"),
        ("version 2.4.1 of 999.1.1", "version 2.4.1 of 999.1.1"),  # three parts: no address
        ("dotted 999.1.1.1", "dotted <token>"),  # four parts but no address: still not kept
    ],
)
def test_ip_addresses_in_every_notation(sanitizer: Sanitizer, text: str, expected: str) -> None:
    assert sanitizer.text(text) == expected


def test_urls_keep_only_scheme_and_host_unless_allow_listed() -> None:
    s = Sanitizer(SanitizerPolicy(url_prefixes=("docs.example.org/guide/",)))
    assert s.text("GET https://api.example.com/v1/users/42?email=a@b.c failed") == (
        "GET https://api.example.com failed"
    )
    assert s.text("see https://docs.example.org/guide/timeouts?x=1.") == (
        "see https://docs.example.org/guide/timeouts."
    )
    assert s.text("see https://docs.example.org/private/notes") == "see https://docs.example.org"
    assert s.text("db https://10.0.0.9:8443/admin") == "db https://<ip:private>:8443"
    assert s.text("v6 http://[fd00:1:2::9]:8080/x") == "v6 http://<ip:private>:8080"
    assert s.text("https://[") == "https://"  # a broken URL is not an error


def test_credentials_in_urls_are_redacted(sanitizer: Sanitizer) -> None:
    out = sanitizer.text("redis://default:s3cretPassw0rd@cache.internal:6379/0 refused")
    assert out == "redis://<secret:url-credentials>@cache.internal:6379 refused"


def test_paths_outside_the_allow_list_are_cut() -> None:
    s = Sanitizer(SanitizerPolicy(path_prefixes=("/opt/ouro/",)))
    assert s.text("read /opt/ouro/agents/agents.yaml ok") == "read /opt/ouro/agents/agents.yaml ok"
    assert s.text("read /opt/ouro/keys/ghp_" + "a1B2" * 9 + " ok") == "read <path> ok"
    assert s.text("read /home/alice/tax-2025.pdf failed") == "read <path> failed"
    assert s.text(r"open C:\Users\bob\notes.txt: denied") == "open <path>: denied"
    assert s.text(r"open \\fileserver\finance$\q3.xlsx now") == "open <path> now"
    assert s.text("cache ~/.cache/ouro/x missing") == "cache <path> missing"


def test_emails_are_removed_however_written(sanitizer: Sanitizer) -> None:
    for text in ("alice.smith@example.co.uk", "alice at example dot com",
                 "alice[at]example[dot]com", "alice (at) example (dot) com",
                 "alice\uff20example\uff0ecom", "alice%40example.com", "alice&#64;example.com"):  # fmt: skip
        assert sanitizer.text(f"sent to {text} today") == "sent to <email> today"


def test_keyword_assignments_keep_the_key(sanitizer: Sanitizer) -> None:
    assert sanitizer.text('{"api_key": "zQ9xW2vR7tY5uI3o"}') == '{"api_key": "<secret:api-key>"}'
    assert sanitizer.text("pw=hunter2 db_pass: swordfish") == (
        "pw=<secret:password> db_pass: <secret:password>"
    )
    assert sanitizer.text("GITHUB_TOKEN=ghp_" + "a1B2" * 9) == "GITHUB_TOKEN=<secret:github-pat>"


def test_the_detect_secrets_layer_names_what_our_rules_cannot() -> None:
    text = "artifactory password AP6xK9mQ2vL7pR4 rejected"
    assert Sanitizer(SanitizerPolicy(use_detect_secrets=False)).text(text) == (
        "artifactory password <secret:password> rejected"
    )
    assert Sanitizer().text("artifactory AP6xK9mQ2vL7pR4 rejected") == (
        "artifactory <secret:artifactory-credentials> rejected"
    )


def test_session_ids_are_pseudonymised_consistently(sanitizer: Sanitizer) -> None:
    a = sanitizer.event({"timestamp": "2026-01-10T00:00:00.000Z", "session_id": "abc"})
    b = sanitizer.event({"timestamp": "2026-01-10T00:00:00.000Z", "session_id": "abc"})
    assert a["session_id"] == b["session_id"] != "abc"
    assert sanitizer.event(a)["session_id"] == a["session_id"]  # idempotent


def test_bytes_are_decoded_not_rejected(sanitizer: Sanitizer) -> None:
    assert sanitizer.text(b"token=ghp_" + b"a1B2" * 9 + b" \xff\xfe") == (
        "token=<secret:github-pat> \ufffd\ufffd"
    )
