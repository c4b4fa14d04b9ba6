"""Rule-based analysis of sanitized telemetry (the plan's EvalAgent, offline).

Contract used by the proposal half of the loop: :class:`Finding`, :func:`analyse`
and :func:`error_rate`. The implementation lands in the next commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
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


def analyse(events: Iterable[Mapping[str, Any]], now: datetime) -> list[Finding]:
    """Findings over the 24 h before ``now`` (earlier events are the baseline)."""
    raise NotImplementedError("analysis lands in the next commit")


def error_rate(
    events: Iterable[Mapping[str, Any]],
    tool: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> float:
    """Failed fraction of ``tool_call`` events in ``[since, until)``; 0.0 if none."""
    raise NotImplementedError("analysis lands in the next commit")
