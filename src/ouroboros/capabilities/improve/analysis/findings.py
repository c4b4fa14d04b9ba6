"""What the analysis finds: :class:`Finding`, the :class:`Thresholds`, and the small
pure helpers the rules share.

These are the types both the aggregation (:mod:`.aggregate`) and the rules
(:mod:`.rules`) use, kept below both so neither imports the other's module.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "error_pattern",
    "tool_reliability",
    "timeout_cluster",
    "latency_anomaly",
    "user_corrections",
    "task_failure_trend",
)
SEVERITIES = ("critical", "high", "medium", "low")

#: Error codes that make a single occurrence worth a proposal.
CRITICAL_CODES = frozenset(
    {"DATA_LOSS", "CORRUPTION", "SECURITY", "SECRET_LEAK", "PRIVILEGE_ESCALATION", "CRASH"}
)
TIMEOUT_CODES = frozenset({"TIMEOUT", "DEADLINE_EXCEEDED", "ETIMEDOUT", "GATEWAY_TIMEOUT"})


@dataclass(frozen=True)
class Finding:
    """One stability issue worth a proposal; every text field is already sanitized."""

    kind: str  # error_pattern|tool_reliability|timeout_cluster|latency_anomaly|user_corrections|task_failure_trend
    severity: str  # critical|high|medium|low
    tool: str | None
    agent: str | None
    summary: str
    evidence: tuple[str, ...]
    count: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """Every number the rules use, in one place so docs and tests can cite them."""

    window_hours: float = 24.0
    baseline_days: float = 7.0
    min_pattern_count: int = 3
    min_pattern_share: float = 0.01  # of the tool's calls: rarer patterns are noise
    min_calls: int = 10
    failure_rate: float = 0.05  # below this a tool is healthy
    cluster_timeouts: int = 3  # timeouts in one 10-minute bucket
    latency_min_samples: int = 20
    latency_ratio: float = 1.5
    latency_min_delta_ms: float = 250.0
    min_corrections: int = 3
    corrections_per_session: float = 0.1
    min_task_failures: int = 3
    trend_ratio: float = 2.0
    #: Telemetry sources (`intake.store.source_of`) whose word is taken alone: a critical
    #: severity they declare, and user corrections they report. Any other source's critical
    #: claims need ``min_pattern_count`` events from two sources or more, and an agent's
    #: corrections must reach the thresholds without the largest such source's share.
    trusted_sources: frozenset[str] = frozenset({"local"})


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def top(counter: Counter[Any], n: int) -> list[tuple[Any, int]]:
    """``most_common`` with ties broken by key, so findings never depend on event order."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]


def rising(daily: float, baseline_daily: float, th: Thresholds) -> bool:
    """Up by ``trend_ratio`` *and* by more than Poisson noise (3 sigma) over the baseline."""
    if baseline_daily <= 0:
        return False
    return daily >= th.trend_ratio * baseline_daily and daily - baseline_daily >= 3 * math.sqrt(
        baseline_daily
    )


def severity_by_count(count: int) -> str:
    return "high" if count >= 50 else "medium" if count >= 10 else "low"


def single_agent(agents: Counter[str]) -> str | None:
    """The agent to name on a finding: only when one agent accounts for it all."""
    return next(iter(agents)) if len(agents) == 1 else None

