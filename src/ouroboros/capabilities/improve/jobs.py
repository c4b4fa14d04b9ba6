"""The improvement loop's scheduled jobs: extraction, evaluation, tick, scan and digest.

``improve_jobs(rt, loop, settings)`` gives :class:`~.scheduler.Job` values for any job
registry (``ouro improve run`` here; ``ouro serve``'s scheduler can add the same ones).
Each job is a function of the time it runs at and returns a one-line summary.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ouroboros.capabilities.improve.analysis.scan import ToolVersionInfo, scan
from ouroboros.capabilities.improve.analysis.workspace import findings
from ouroboros.capabilities.improve.intake.runtime import collect_ledger, store_for
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop, Paused, Report
from ouroboros.capabilities.improve.proposals.planner import AGENTS
from ouroboros.capabilities.improve.proposals.yamledit import get
from ouroboros.capabilities.improve.scheduler import Job
from ouroboros.kernel import Runtime
from ouroboros.kernel.settings import Settings
from ouroboros.kernel.state import patch_from_envelope


def improve_jobs(rt: Runtime, loop: ImproveLoop, settings: Settings) -> list[Job]:
    s = settings.schedules
    return [
        Job("extract", s.extract, lambda now: extract(rt, settings)),
        Job("evaluate", s.evaluate, lambda now: _summary(evaluate(rt, loop, now))),
        Job("tick", s.tick, lambda now: f"{len(loop.tick())} window(s) judged"),
        Job("scan", s.scan, lambda now: _summary(enhancement_scan(rt, loop, settings, now))),
        Job("digest", s.digest, lambda now: digest(loop, now)),
    ]


def digest(loop: ImproveLoop, now: datetime) -> str:
    sent = loop.notifications.flush(now, len(loop.proposals("pending")))
    return f"{len(sent)} message(s) sent"


def _summary(report: Report | str) -> str:
    if isinstance(report, str):
        return report
    return f"{len(report.outcomes)} proposal(s), {len(report.skipped)} finding(s) without one"


def extract(rt: Runtime, settings: Settings) -> str:
    """The runtime's own activity (ledger outcomes) into the telemetry store, as spans."""
    recorded = collect_ledger(rt, store_for(rt))
    return f"{recorded} kernel outcome(s) recorded as spans"


def evaluate(rt: Runtime, loop: ImproveLoop, now: datetime) -> Report | str:
    found = findings(store_for(rt), now)
    try:
        return loop.propose_report(found)
    except Paused as e:
        return f"{len(found)} finding(s); paused: {e}"


def enhancement_scan(rt: Runtime, loop: ImproveLoop, settings: Settings, now: datetime
                     ) -> Report | str:
    """The scan's findings, proposed as low-priority proposals."""
    found = scan_findings(rt, loop, settings, now)
    if not found:
        return "nothing to enhance"
    try:
        return loop.propose_report(found)
    except Paused as e:
        return f"{len(found)} enhancement finding(s); paused: {e}"


def scan_findings(rt: Runtime, loop: ImproveLoop, settings: Settings, now: datetime
                  ) -> list[Any]:
    store = store_for(rt)
    days = settings.improve.scan.stale_days + 28
    events = store.events(since=now - timedelta(days=days), until=now)
    tools, prompts = ledger_history(rt)
    configured = get(loop.repo.read(loop.repo.head(), AGENTS) or "", ("tools",))
    return scan(events, now, settings.improve.scan, tools,
                configured.keys() if isinstance(configured, dict) else (), prompts)


def ledger_history(rt: Runtime) -> tuple[dict[str, list[ToolVersionInfo]], dict[str, list[str]]]:
    """Each tool's applied versions and each prompt's applied texts, from the ledger."""
    tools: dict[str, list[ToolVersionInfo]] = {}
    prompts: dict[str, list[str]] = {}
    for event in rt.log("PatchApplied"):
        payload = event.payload
        kind, target = payload.get("type"), str(payload.get("target", ""))
        if kind not in ("prompt", "skill") or payload.get("rollback_of"):
            continue
        try:
            value = patch_from_envelope(payload["envelope"]).get("value")
        except (KeyError, ValueError, TypeError):
            continue
        at = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        if kind == "prompt" and isinstance(value, str):
            prompts.setdefault(target, []).append(value)
        elif kind == "skill" and isinstance(value, dict):
            tools.setdefault(str(value.get("tool_id") or target.split("/")[-1]), []).append(
                ToolVersionInfo(at, str(value.get("description", "")),
                                str(value.get("fingerprint", ""))))
    return tools, prompts
