"""The improvement loop's scheduled jobs: extract, evaluate, tick, scan and notify.

Each is a function of a `~.schedule.JobHost` that returns a one-line summary, registered
in `~.schedule.JOBS` with its default schedule (``[schedules]`` in ``ouro.toml`` and a
host's flags override it). ``ouro serve`` and ``ouro improve run`` run the same ones.
Heavy imports stay inside the functions: registering them costs nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ouroboros.capabilities.improve.schedule import Job, JobHost, register_job
from ouroboros.kernel.settings import Schedules

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.analysis.scan import ToolVersionInfo
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop, Report
    from ouroboros.kernel import Runtime
    from ouroboros.kernel.settings import Settings


def extract(host: JobHost) -> str:
    """The runtime's own activity (ledger outcomes) into the telemetry store, as spans."""
    from ouroboros.capabilities.improve.intake.runtime import collect_ledger

    with host.runtime() as rt:
        recorded = collect_ledger(rt, host.telemetry())
    return f"{recorded} kernel outcome(s) recorded as spans"


def evaluate(host: JobHost) -> str:
    """``ouro telemetry collect`` + ``eval --propose``: findings become pending proposals."""
    from ouroboros.capabilities.improve.analysis import Thresholds
    from ouroboros.capabilities.improve.analysis.workspace import findings
    from ouroboros.capabilities.improve.intake.runtime import collect_ledger
    from ouroboros.capabilities.improve.proposals.loop import Paused
    from ouroboros.capabilities.improve.registrar import loop_of

    store = host.telemetry()
    with host.runtime() as rt:
        collected = collect_ledger(rt, store)  # idempotent: extract may be off
        loop = loop_of(rt)
        found = findings(store, loop.clock(), Thresholds(trusted_sources=loop.monitor.trusted))
        try:
            report = loop.propose_report(found) if found else None
        except Paused as e:
            return f"{len(found)} finding(s); no proposals: {e}"
    made = f"{len(report.outcomes)} proposal(s)" if report else "0 proposal(s)"
    return f"{collected} ledger outcome(s) collected; {len(found)} finding(s); {made}"


def tick(host: JobHost) -> str:
    from ouroboros.capabilities.improve.registrar import loop_of

    with host.runtime() as rt:
        checks = loop_of(rt).tick()
    verdicts = ", ".join(f"{c.proposal_id} {c.verdict}" for c in checks)
    return f"{len(checks)} monitoring check(s)" + (f": {verdicts}" if verdicts else "")


def notify(host: JobHost) -> str:
    from ouroboros.capabilities.improve.registrar import loop_of

    with host.runtime() as rt:
        loop = loop_of(rt)
        sent = loop.notifications.flush(loop.clock(), len(loop.proposals("pending")))
    return f"{len(sent)} notification(s) sent"


def enhancement_scan(host: JobHost) -> str:
    """The scan's findings, proposed as low-priority proposals."""
    from ouroboros.capabilities.improve.proposals.loop import Paused
    from ouroboros.capabilities.improve.registrar import loop_of

    with host.runtime() as rt:
        loop = loop_of(rt)
        found = scan_findings(rt, loop, host.settings, loop.clock())
        if not found:
            return "nothing to enhance"
        try:
            return summary(loop.propose_report(found))
        except Paused as e:
            return f"{len(found)} enhancement finding(s); paused: {e}"


def summary(report: Report) -> str:
    return f"{len(report.outcomes)} proposal(s), {len(report.skipped)} finding(s) without one"


def scan_findings(rt: Runtime, loop: ImproveLoop, settings: Settings, now: datetime
                  ) -> list[Any]:
    from ouroboros.capabilities.improve.analysis.scan import scan
    from ouroboros.capabilities.improve.intake.runtime import store_for
    from ouroboros.capabilities.improve.proposals.planner import AGENTS
    from ouroboros.capabilities.improve.proposals.yamledit import get

    store = store_for(rt)
    days = settings.improve.scan.stale_days + 28
    events = store.events(since=now - timedelta(days=days), until=now)
    tools, prompts = ledger_history(rt)
    configured = get(loop.repo.read(loop.repo.head(), AGENTS) or "", ("tools",))
    return scan(events, now, settings.improve.scan, tools,
                configured.keys() if isinstance(configured, dict) else (), prompts)


def ledger_history(rt: Runtime) -> tuple[dict[str, list[ToolVersionInfo]], dict[str, list[str]]]:
    """Each tool's applied versions and each prompt's applied texts, from the ledger."""
    from ouroboros.capabilities.improve.analysis.scan import ToolVersionInfo
    from ouroboros.kernel.state import patch_from_envelope

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


_DEFAULTS = Schedules()
register_job(Job("extract", extract, _DEFAULTS.extract,
                 "the runtime's own ledger outcomes into the telemetry store, as spans"))
register_job(Job("evaluate", evaluate, _DEFAULTS.evaluate,
                 "collect the ledger's outcomes, analyse telemetry, turn findings into "
                 "proposals (pending approval)"))
register_job(Job("tick", tick, _DEFAULTS.tick,
                 "catch up with kernel decisions and forge merges, judge monitoring windows "
                 "(auto-revert on a spike), send due notifications"))
register_job(Job("scan", enhancement_scan, _DEFAULTS.scan,
                 "the enhancement scan: never-used tools, rising failure rates, stale tool "
                 "descriptions, prompt drift (low-priority proposals)"))
register_job(Job("notify", notify, _DEFAULTS.notify,
                 "send notifications that are due (critical at once, high hourly, the rest "
                 "in the 09:00 digest)"))
