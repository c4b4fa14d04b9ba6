"""The analysis rules: pure functions from an :class:`Aggregate` to findings.

Each rule reads only aggregates (counters, rates, latency lists) and the
:class:`Thresholds`; none sees an event. Priorities follow the plan: stability
first (error patterns, reliability, timeouts), then performance (p95), then
the user-facing signals (corrections) and scheduled-task health.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ouroboros.capabilities.improve.analysis.aggregate import (
    Aggregate,
    Samples,
    ToolStats,
    aggregate,
)
from ouroboros.capabilities.improve.analysis.findings import (
    KINDS,
    SEVERITIES,
    Finding,
    Thresholds,
    p95,
    rising,
    severity_by_count,
    single_agent,
    top,
)


def analyse(
    events: Iterable[Mapping[str, Any]], now: datetime, thresholds: Thresholds | None = None
) -> list[Finding]:
    """Findings over the 24 h before ``now``, most severe first (stability first)."""
    return findings_of(aggregate(events, now, thresholds))


def findings_of(agg: Aggregate) -> list[Finding]:
    """Every rule's findings, ordered by severity, kind, count, then names (total order)."""
    found = [
        *_error_patterns(agg),
        *_tool_reliability(agg),
        *_timeout_clusters(agg),
        *_latency_anomalies(agg),
        *_user_corrections(agg),
        *_task_failure_trends(agg),
    ]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(
        found,
        key=lambda f: (
            rank[f.severity],
            order[f.kind],
            -f.count,
            f.tool or "",
            f.agent or "",
            f.summary,
        ),
    )


def _window(agg: Aggregate) -> str:
    return f"between {agg.start} and {agg.now}"


def _error_patterns(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    for key, count in agg.patterns.items():
        source, subject, code, message = key
        critical = agg.is_critical(key)
        calls = agg.recent[subject].calls if source == "tool_call" else 0
        share = count / calls if calls else 1.0
        if not critical and (count < th.min_pattern_count or share < th.min_pattern_share):
            continue
        agents = agg.pattern_agents[key]
        severity = "critical" if critical else severity_by_count(count)
        is_tool = source == "tool_call"
        what = f"{subject} {code}" + (f": {message}" if message else "")
        yield Finding(
            kind="error_pattern",
            severity=severity,
            tool=subject if is_tool else None,
            agent=single_agent(agents),
            summary=f"{'Tool' if is_tool else 'Task'} error {what} occurred {count} times",
            evidence=(
                f"{count} occurrences {_window(agg)}",
                f"error pattern: {code}" + (f" {message}" if message else ""),
                "affected agents: " + ", ".join(f"{a} ({n})" for a, n in top(agents, 5)),
                *(("severity: critical error",) if critical else ()),
            ),
            count=count,
            metrics={"occurrences": float(count), "share_of_calls": round(share, 4)},
        )


def _tool_reliability(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    flagged: set[str] = set()
    for tool, stats in agg.recent.items():
        if stats.calls >= th.min_calls and stats.failures / stats.calls >= th.failure_rate:
            flagged.add(tool)
            yield _reliability(agg, tool, single_agent(stats.agents), stats)
    for (tool, agent), stats in agg.recent_by_agent.items():
        if tool in flagged or stats.calls < th.min_calls:
            continue
        if stats.failures / stats.calls >= th.failure_rate:
            yield _reliability(agg, tool, agent, stats)


def _reliability(agg: Aggregate, tool: str, agent: str | None, stats: ToolStats) -> Finding:
    rate = stats.failures / stats.calls
    severity = (
        "critical"
        if rate >= 0.8
        else "high"
        if rate >= 0.4
        else "medium"
        if rate >= 0.15
        else "low"
    )
    who = f"{tool} ({agent})" if agent else tool
    by_agent = [
        f"{a}: {agg.recent_by_agent[(tool, a)].failures}/{agg.recent_by_agent[(tool, a)].calls} failed"
        for a, _ in top(stats.agents, 5)
    ]
    return Finding(
        kind="tool_reliability",
        severity=severity,
        tool=tool,
        agent=agent,
        summary=f"{who} succeeded in only {100 * (1 - rate):.1f}% of {stats.calls} calls",
        evidence=(
            f"{stats.failures} of {stats.calls} calls failed ({100 * rate:.1f}%) {_window(agg)}",
            *by_agent,
        ),
        count=stats.failures,
        metrics={
            "calls": float(stats.calls),
            "failures": float(stats.failures),
            "failure_rate": round(rate, 4),
            "success_rate": round(1 - rate, 4),
        },
    )


def _timeout_clusters(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    for tool, buckets in agg.timeout_buckets.items():
        clusters = sorted(b for b, n in buckets.items() if n >= th.cluster_timeouts)
        if not clusters:
            continue
        in_clusters = sum(buckets[b] for b in clusters)
        severity = "high" if len(clusters) >= 3 or in_clusters >= 10 else "medium"
        agents = agg.recent[tool].agents
        yield Finding(
            kind="timeout_cluster",
            severity=severity,
            tool=tool,
            agent=single_agent(agents),
            summary=f"{tool} timed out {in_clusters} times in {len(clusters)} ten-minute clusters",
            evidence=(
                f"{agg.recent[tool].timeouts} timeouts in {agg.recent[tool].calls} calls {_window(agg)}",
                *(f"{buckets[b]} timeouts in the 10 minutes from {b}0" for b in clusters[:6]),
            ),
            count=in_clusters,
            metrics={
                "clusters": float(len(clusters)),
                "timeouts_in_clusters": float(in_clusters),
                "timeouts": float(agg.recent[tool].timeouts),
                "largest_cluster": float(max(buckets[b] for b in clusters)),
            },
        )


def _latency_anomalies(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    for tool, stats in agg.recent.items():
        base = agg.baseline_latency.get(tool) or Samples()
        if stats.latencies.seen < th.latency_min_samples or base.seen < th.latency_min_samples:
            continue
        now_p95, base_p95 = p95(stats.latencies), p95(base)
        delta = now_p95 - base_p95
        if now_p95 < base_p95 * th.latency_ratio or delta < th.latency_min_delta_ms:
            continue
        ratio = now_p95 / base_p95 if base_p95 else float("inf")
        yield Finding(
            kind="latency_anomaly",
            severity="high" if ratio >= 3 else "medium",
            tool=tool,
            agent=None,
            summary=f"{tool} p95 latency rose from {base_p95:.0f} ms to {now_p95:.0f} ms",
            evidence=(
                f"p95 {now_p95:.0f} ms over {stats.latencies.seen} calls {_window(agg)}",
                f"baseline p95 {base_p95:.0f} ms over {base.seen} calls since {agg.baseline_start}",
            ),
            count=stats.latencies.seen,
            metrics={"p95_ms": now_p95, "baseline_p95_ms": base_p95, "ratio": round(ratio, 3)},
        )


def _user_corrections(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    days = th.baseline_days or 1.0
    for agent, types in agg.corrections.items():
        count = agg.corrections_of(agent)  # one untrusted source's share left out
        if count < th.min_corrections:
            continue
        sessions = len(agg.sessions.get(agent, ())) or count
        per_session = count / sessions
        baseline_daily = agg.baseline_corrections[agent] / days
        daily = count * 24.0 / th.window_hours
        is_rising = rising(daily, baseline_daily, th)
        if per_session < th.corrections_per_session and not is_rising:
            continue
        down = agg.feedback[agent]["down"]
        rated = down + agg.feedback[agent]["up"]
        yield Finding(
            kind="user_corrections",
            severity="high"
            if per_session >= 0.3
            else "medium"
            if per_session >= 0.15 or is_rising
            else "low",
            tool=None,
            agent=agent,
            summary=f"{agent} was corrected {count} times ({per_session:.2f} per session)",
            evidence=(
                f"{count} corrections in {sessions} sessions {_window(agg)}",
                "correction types: " + ", ".join(f"{t} ({n})" for t, n in top(types, 5)),
                f"baseline {baseline_daily:.1f} corrections/day",
                *((f"feedback: {down} of {rated} thumbs down",) if rated else ()),
            ),
            count=count,
            metrics={
                "corrections": float(count),
                "per_session": round(per_session, 4),
                "baseline_per_day": round(baseline_daily, 4),
                "thumbs_down": float(down),
            },
        )


def _task_failure_trends(agg: Aggregate) -> Iterable[Finding]:
    th = agg.thresholds
    days = th.baseline_days or 1.0
    for task, count in agg.task_failures.items():
        baseline_daily = agg.baseline_task_failures[task] / days
        daily = count * 24.0 / th.window_hours
        if count < th.min_task_failures or (
            baseline_daily and daily < th.trend_ratio * baseline_daily
        ):
            continue
        ratio = daily / baseline_daily if baseline_daily else float(count)
        yield Finding(
            kind="task_failure_trend",
            severity="high" if count >= 10 or (baseline_daily and ratio >= 4) else "medium",
            tool=None,
            agent=None,
            summary=f"Scheduled task {task} failed {count} times, up from {baseline_daily:.1f}/day",
            evidence=(
                f"{count} failures ({agg.task_retries[task]} retries) {_window(agg)}",
                f"baseline {baseline_daily:.2f} failures/day since {agg.baseline_start}",
            ),
            count=count,
            metrics={
                "failures": float(count),
                "retries": float(agg.task_retries[task]),
                "baseline_per_day": round(baseline_daily, 4),
            },
        )
