"""The analysis over a workspace's telemetry store."""

from __future__ import annotations

from datetime import datetime, timedelta

from ouroboros.capabilities.improve.analysis.findings import Finding, Thresholds
from ouroboros.capabilities.improve.analysis.rules import analyse
from ouroboros.capabilities.improve.intake.store import TelemetryStore


def findings(
    store: TelemetryStore, now: datetime | None = None, thresholds: Thresholds | None = None
) -> list[Finding]:
    """The analysis over a store, reading only the day files the window needs."""
    th = thresholds or Thresholds()
    now = now or store.clock()
    since = now - timedelta(hours=th.window_hours) - timedelta(days=th.baseline_days)
    return analyse(store.events(since=since, until=now), now, th)
