"""The enhancement scan (weekly by default): slow drifts the stability rules do not see.

Pure functions over values the shell gathers (telemetry events, each tool's version
history, each prompt's applied versions). Every finding is ``low`` severity: these are
suggestions, batched into the daily digest, never alerts.

- ``never_used_tool``: a configured or registered tool with no call in ``stale_days``;
- ``failure_rate_rise``: a tool failing ``failure_rise`` times more often in the last 7
  days than in the 21 before (both with at least ``min_runs`` calls);
- ``stale_tool_description``: a tool whose code changed since its description last did,
  and that description is older than ``stale_days``;
- ``prompt_drift``: a prompt whose current text shares less than ``1 - drift_ratio`` with
  its first applied version.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ouroboros.capabilities.improve.analysis.findings import Finding
from ouroboros.capabilities.improve.intake.events import format_timestamp
from ouroboros.kernel.settings import ScanSettings

SCAN_KINDS = ("never_used_tool", "failure_rate_rise", "stale_tool_description", "prompt_drift")
RECENT_DAYS = 7
BASELINE_DAYS = 21


@dataclass(frozen=True)
class ToolVersionInfo:
    """One applied version of a tool: when, its description, its code fingerprint."""

    at: datetime
    description: str
    fingerprint: str


def _calls(events: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str, bool]]:
    for e in events:
        if e.get("event_type") in ("tool_call", "tool_run") and isinstance(e.get("tool"), str):
            yield e["tool"], str(e.get("timestamp", "")), bool(e.get("success"))


def scan(events: Iterable[Mapping[str, Any]], now: datetime, settings: ScanSettings,
         tools: Mapping[str, Sequence[ToolVersionInfo]] | None = None,
         configured_tools: Iterable[str] = (),
         prompts: Mapping[str, Sequence[str]] | None = None) -> list[Finding]:
    """Every enhancement finding, sorted by kind then subject (a total order)."""
    tools = tools or {}
    stale_since = format_timestamp(now - timedelta(days=settings.stale_days))
    recent_since = format_timestamp(now - timedelta(days=RECENT_DAYS))
    base_since = format_timestamp(now - timedelta(days=RECENT_DAYS + BASELINE_DAYS))
    until = format_timestamp(now)
    used: set[str] = set()
    runs: dict[str, Counter[str]] = {}
    for tool, ts, ok in _calls(events):
        if not ts or ts >= until:
            continue
        if ts >= stale_since:
            used.add(tool)
        if ts >= base_since:
            window = "recent" if ts >= recent_since else "base"
            c = runs.setdefault(tool, Counter())
            c[f"{window}_calls"] += 1
            c[f"{window}_failures"] += not ok
    found: list[Finding] = []
    for tool in sorted(set(configured_tools) | set(tools)):
        if tool not in used:
            found.append(Finding("never_used_tool", "low", tool, None,
                                 f"Tool {tool} was not called in {settings.stale_days:g} days",
                                 (f"configured but unused since {stale_since[:10]}",), 0))
    for tool, c in sorted(runs.items()):
        if c["recent_calls"] < settings.min_runs or c["base_calls"] < settings.min_runs:
            continue
        recent = c["recent_failures"] / c["recent_calls"]
        base = c["base_failures"] / c["base_calls"]
        if recent >= 0.05 and recent >= settings.failure_rise * max(base, 0.01):
            found.append(Finding(
                "failure_rate_rise", "low", tool, None,
                f"Tool {tool} fails {100 * recent:.0f}% of calls, up from {100 * base:.0f}%",
                (f"last {RECENT_DAYS} days: {c['recent_failures']}/{c['recent_calls']} failed",
                 f"{BASELINE_DAYS} days before: {c['base_failures']}/{c['base_calls']} failed"),
                c["recent_failures"], {"failure_rate": recent, "baseline_rate": base}))
    for tool, versions in sorted(tools.items()):
        stale = _stale_description(versions, now - timedelta(days=settings.stale_days))
        if stale:
            found.append(Finding("stale_tool_description", "low", tool, None,
                                 f"Tool {tool}'s description predates its code", stale,
                                 len(versions)))
    for target, texts in sorted((prompts or {}).items()):
        if len(texts) < 2:
            continue
        kept = difflib.SequenceMatcher(None, texts[0], texts[-1], autojunk=False).ratio()
        if 1 - kept >= settings.drift_ratio:
            agent = target.rsplit("/", 1)[-1]
            found.append(Finding("prompt_drift", "low", None, agent,
                                 f"Prompt {target} drifted {100 * (1 - kept):.0f}% from its "
                                 f"first version over {len(texts) - 1} patches",
                                 (f"{len(texts)} applied versions",), len(texts) - 1,
                                 {"similarity": kept}))
    return found


def _stale_description(versions: Sequence[ToolVersionInfo], before: datetime
                       ) -> tuple[str, ...]:
    """Evidence that the code changed after the description last did (long ago), or ()."""
    if len(versions) < 2:
        return ()
    ordered = sorted(versions, key=lambda v: v.at)
    described = next(v for v in ordered if v.description == ordered[-1].description)
    code_changes = [v for v in ordered if v.at > described.at
                    and v.fingerprint != described.fingerprint]
    if not code_changes or described.at >= before:
        return ()
    return (f"description unchanged since {described.at:%Y-%m-%d}",
            f"code changed {len(code_changes)} time(s) since, last {code_changes[-1].at:%Y-%m-%d}")
