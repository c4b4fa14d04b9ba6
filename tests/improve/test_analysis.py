"""The rule-based analysis: faults produce the right findings, healthy tools none."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve import Finding, analyse, error_rate
from ouroboros.capabilities.improve.analysis import SEVERITIES, aggregate
from ouroboros.capabilities.improve.intake import synthetic as syn

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
START = NOW - timedelta(days=8)


def run(faults: Sequence[syn.Fault] = (), seed: int = 1) -> list[Finding]:
    # stamped as the store stamps what `ouro telemetry ingest` stores: the runtime's own
    events = syn.generate(START, NOW, events_per_hour=300, faults=faults, seed=seed)
    return analyse(({**e, "source": "local"} for e in events), NOW)


def kinds(findings: list[Finding]) -> set[tuple[str, str | None, str | None]]:
    return {(f.kind, f.tool, f.agent) for f in findings}


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_healthy_deployment_has_no_findings(seed: int) -> None:
    """0.5 % background noise over many distinct errors is not a proposal."""
    assert run(seed=seed) == []


def test_repeated_web_search_timeouts_are_found() -> None:
    findings = run([syn.Timeouts(start=ago(6), end=ago(3), rate=0.7)])
    assert kinds(findings) >= {
        ("error_pattern", "web_search", "ResearchAgent"),
        ("timeout_cluster", "web_search", "ResearchAgent"),
    }
    assert {f.tool for f in findings} == {"web_search"}  # nothing about healthy tools
    pattern = next(f for f in findings if f.kind == "error_pattern")
    assert pattern.summary == (
        f"Tool error web_search TIMEOUT: Request timed out after <n>s occurred {pattern.count} times"
    )
    assert pattern.count >= 3 and pattern.metrics["occurrences"] == pattern.count
    cluster = next(f for f in findings if f.kind == "timeout_cluster")
    assert cluster.severity == "high" and cluster.metrics["clusters"] >= 3


def test_an_error_spike_marks_every_tool_unreliable() -> None:
    findings = run([syn.ErrorSpike(start=ago(10), end=ago(2), rate=0.6)])
    reliability = [f for f in findings if f.kind == "tool_reliability"]
    assert {f.tool for f in reliability} == {t for _, t, _ in syn.DEPLOYMENT}
    assert all(f.severity in ("medium", "high") for f in reliability)
    assert all(0.1 < f.metrics["failure_rate"] < 0.4 for f in reliability)


def test_a_p95_latency_regression_is_found_for_that_tool_only() -> None:
    findings = run([syn.LatencyRegression(start=ago(20), end=NOW, tool="db_query", factor=5)])
    assert kinds(findings) == {("latency_anomaly", "db_query", None)}
    (finding,) = findings
    assert finding.metrics["p95_ms"] > 3 * finding.metrics["baseline_p95_ms"]


def test_failing_scheduled_task_is_a_trend() -> None:
    findings = run([syn.TaskFailures(start=ago(12), end=NOW, per_hour=1.5)])
    trend = [f for f in findings if f.kind == "task_failure_trend"]
    assert [f.summary.split(" failed")[0] for f in trend] == ["Scheduled task rag-refresh"]
    assert trend[0].metrics["failures"] >= 3


def test_a_correction_wave_flags_the_agent() -> None:
    findings = run([syn.Corrections(start=ago(20), end=NOW, agent="CodeAgent", per_hour=6)])
    assert kinds(findings) == {("user_corrections", None, "CodeAgent")}
    assert "factual_error" in findings[0].evidence[1]


def tool_call(minutes_ago: float, tool: str = "web_search", agent: str = "A", ok: bool = True,
              **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "timestamp": syn.format_timestamp(NOW - timedelta(minutes=minutes_ago)),
        "event_type": "tool_call", "tool": tool, "agent": agent, "success": ok,
        "source": "local", **extra,
    }  # fmt: skip


def test_one_critical_error_is_enough() -> None:
    events = [tool_call(i, ok=True) for i in range(1, 500)]
    events.append(tool_call(3, ok=False, error_code="DATA_LOSS", error_message="lost 12 rows"))
    (finding,) = analyse(events, NOW)
    assert (finding.kind, finding.severity, finding.count) == ("error_pattern", "critical", 1)
    assert "severity: critical error" in finding.evidence


def test_a_tool_failing_for_one_agent_only_names_that_agent() -> None:
    events = [tool_call(i, agent="Healthy") for i in range(1, 400)]
    events += [
        tool_call(i, agent="Broken", ok=i % 2 == 0, error_code=f"E{i}") for i in range(1, 21)
    ]
    findings = analyse(events, NOW)
    assert [(f.kind, f.tool, f.agent) for f in findings] == [
        ("tool_reliability", "web_search", "Broken")
    ]
    assert findings[0].metrics == {
        "calls": 20.0,
        "failures": 10.0,
        "failure_rate": 0.5,
        "success_rate": 0.5,
    }


def test_findings_come_most_severe_first() -> None:
    findings = run(
        [
            syn.Timeouts(start=ago(6), end=ago(3), rate=0.7),
            syn.TaskFailures(start=ago(12), end=NOW, per_hour=1.5),
            syn.ErrorSpike(start=ago(10), end=ago(2), rate=0.3, tool="send_message"),
        ]
    )
    ranks = [SEVERITIES.index(f.severity) for f in findings]
    assert ranks == sorted(ranks) and len(findings) >= 4


def test_error_rate_over_a_half_open_window() -> None:
    events = [tool_call(m, ok=m % 4 != 0) for m in range(1, 101)]  # every 4th minute fails
    events.append(
        {"timestamp": NOW.isoformat(), "event_type": "feedback", "agent": "A", "rating": "up"}
    )
    assert error_rate(events) == pytest.approx(25 / 100)
    assert error_rate(events, since=ago(1), until=NOW) == pytest.approx(15 / 60)
    assert error_rate(events, tool="other") == 0.0
    assert (
        error_rate(events, since=NOW - timedelta(minutes=4), until=NOW - timedelta(minutes=3))
        == 1.0
    )


def test_events_outside_the_window_and_baseline_are_ignored() -> None:
    old = [tool_call(60 * 24 * 20 + i, ok=False, error_code="X") for i in range(50)]
    future = [tool_call(-5 - i, ok=False, error_code="X") for i in range(50)]
    assert analyse(old + future, NOW) == []
    assert aggregate(old + future, NOW).events == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.0, 1.0))
def test_findings_do_not_depend_on_event_order(seed: int, rate: float) -> None:
    rng = random.Random(seed)
    events = [
        tool_call(
            rng.uniform(0, 60 * 30),
            tool=rng.choice("xyz"),
            ok=rng.random() > rate,
            error_code=rng.choice(("TIMEOUT", "E1")),
            latency_ms=rng.uniform(1, 100),
        )
        for _ in range(300)
    ]
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert analyse(events, NOW) == analyse(shuffled, NOW)
    assert 0.0 <= error_rate(events) <= 1.0


def test_events_without_a_usable_timestamp_are_skipped_not_fatal() -> None:
    events: list[dict[str, Any]] = [
        {"event_type": "tool_call", "tool": "x", "success": False},
        {"timestamp": "soon", "event_type": "tool_call", "tool": "x", "success": False},
        {
            "timestamp": NOW - timedelta(minutes=1),
            "event_type": "tool_call",
            "tool": "x",
            "success": False,
        },
    ]
    agg = aggregate(events, NOW)
    assert (agg.events, agg.unreadable) == (1, 2)
    assert error_rate(events) == 1.0
