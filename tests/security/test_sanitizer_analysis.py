"""Analysis still works on default-deny telemetry: error templates group, findings hold."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ouroboros.capabilities.improve import Finding, analyse
from ouroboros.capabilities.improve.analysis.aggregate import _pattern_of
from ouroboros.capabilities.improve.intake import synthetic as syn
from ouroboros.capabilities.improve.intake.events import normalise_event
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
START = NOW - timedelta(days=8)
SANITIZER = Sanitizer()


def _values(rng: random.Random) -> dict[str, str]:
    return {
        "email": f"{rng.choice(['ann', 'bo', 'cy'])}{rng.randint(1, 999)}@example.com",
        "ip": f"{rng.randint(11, 200)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "secret": rng.choice(["ghp_", "sk-proj-", "glpat-", "xoxb-1234567890-"])
        + "".join(rng.choice("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(36)),
        "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
        "ms": str(rng.randint(1000, 99999)),
        "path": f"/home/{rng.choice(['ann', 'bo'])}/.cache/{rng.randint(1, 99)}.json",
    }  # fmt: skip


TEMPLATES = (
    "auth failed for {email} from {ip} with token {secret} after {ms} ms (request {uuid})",
    "could not read {path}: permission denied",
    "upstream {ip} reset the connection after {ms} ms",
)


@pytest.mark.parametrize("template", TEMPLATES)
def test_one_error_with_different_values_is_one_template(template: str) -> None:
    rng = random.Random(5)
    patterns = {_pattern_of(SANITIZER.text(template.format(**_values(rng)))) for _ in range(50)}
    assert len(patterns) == 1, patterns


def test_different_errors_stay_different_templates() -> None:
    rng = random.Random(6)
    patterns = {_pattern_of(SANITIZER.text(t.format(**_values(rng)))) for t in TEMPLATES}
    assert len(patterns) == len(TEMPLATES)


def _run(faults: Sequence[syn.Fault], sanitize: bool) -> list[Finding]:
    events = syn.generate(START, NOW, events_per_hour=300, faults=faults, seed=3)
    if sanitize:
        events = (SANITIZER.event(normalise_event(e).event) for e in events)
    # stamped as the store stamps what `ouro telemetry ingest` stores: the runtime's own
    return analyse(({**e, "source": "local"} for e in events), NOW)


def _shape(findings: list[Finding]) -> list[tuple[str, str, str | None, int]]:
    return sorted((f.kind, f.severity, f.tool, f.count) for f in findings)


@pytest.mark.parametrize(
    "faults",
    [
        [syn.Timeouts(start=NOW - timedelta(hours=6), end=NOW - timedelta(hours=3), rate=0.7)],
        [syn.ErrorSpike(start=NOW - timedelta(hours=10), end=NOW - timedelta(hours=2), rate=0.6)],
        [syn.LatencyRegression(start=NOW - timedelta(hours=20), end=NOW, factor=5)],
        [syn.TaskFailures(start=NOW - timedelta(hours=20), end=NOW, per_hour=1.0)],
        [syn.Corrections(start=NOW - timedelta(hours=20), end=NOW)],
    ],
    ids=["timeouts", "error-spike", "latency", "task-failures", "corrections"],
)
def test_findings_are_the_same_on_sanitized_telemetry(faults: list[syn.Fault]) -> None:
    """Faults without secrets: sanitizing changes no finding (kind, severity, tool, count)."""
    raw, clean = _run(faults, sanitize=False), _run(faults, sanitize=True)
    assert raw and _shape(clean) == _shape(raw)


def test_leaked_secrets_of_many_kinds_group_into_one_finding() -> None:
    """Error messages carrying different secrets are one error pattern after sanitizing."""
    leak = syn.LeakedSecrets(start=NOW - timedelta(hours=20), end=NOW, rate=0.2)
    findings = [f for f in _run([leak], sanitize=True) if f.kind == "error_pattern"]
    assert findings and all("AUTH_FAILED" in f.summary for f in findings)
    assert all("<secret>" in f.summary and "<path>" in f.summary for f in findings)
    assert len({f.summary.split(" occurred ")[0] for f in findings}) == len(findings)
