"""The analysis over a workspace's telemetry store."""

from __future__ import annotations

from datetime import datetime, timedelta

from ouroboros.capabilities.improve.analysis.aggregate import Aggregate, aggregate
from ouroboros.capabilities.improve.analysis.findings import Finding, Thresholds
from ouroboros.capabilities.improve.analysis.rules import findings_of
from ouroboros.capabilities.improve.intake.store import ReadStats, TelemetryStore


def findings(
    store: TelemetryStore, now: datetime | None = None, thresholds: Thresholds | None = None
) -> list[Finding]:
    """The analysis over a store, reading only the day files the window needs."""
    return evaluate(store, now, thresholds)[0]


def evaluate(
    store: TelemetryStore, now: datetime | None = None, thresholds: Thresholds | None = None
) -> tuple[list[Finding], Aggregate, ReadStats]:
    """`findings`, with the aggregate they came from (its ``overflow``: names a full table
    refused; ``unreadable``: events without a usable timestamp) and the lines the reader
    skipped, so what the analysis could not see can be shown."""
    th = thresholds or Thresholds()
    now = now or store.clock()
    since = now - timedelta(hours=th.window_hours) - timedelta(days=th.baseline_days)
    stats = ReadStats()
    agg = aggregate(store.events(since=since, until=now, stats=stats), now, th)
    return findings_of(agg), agg, stats
