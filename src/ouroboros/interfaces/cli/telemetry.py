"""``ouro telemetry``: ingest, collect, evaluate and generate sanitized telemetry."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ouroboros.capabilities.improve.analysis import Finding, Thresholds
from ouroboros.capabilities.improve.analysis.workspace import findings
from ouroboros.capabilities.improve.intake import synthetic
from ouroboros.capabilities.improve.intake.collectors import IngestReport, ingest
from ouroboros.capabilities.improve.intake.events import EVENT_TYPES, parse_timestamp
from ouroboros.capabilities.improve.intake.runtime import collect_ledger, store_for
from ouroboros.capabilities.improve.intake.store import ReadStats, TelemetryStore
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
)
from ouroboros.kernel import Runtime, UsageError
from ouroboros.kernel.workspace import Workspace, resolve_home

app = typer.Typer(
    help="Sanitized telemetry and its analysis (the EvalAgent).", no_args_is_help=True
)

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
FAULTS = (
    "web-search-timeouts",
    "error-spike",
    "latency",
    "task-failures",
    "corrections",
    "leaked-secrets",
)


def _store(home: Path | None) -> TelemetryStore:
    workspace = Workspace.load(resolve_home(home))  # raises WorkspaceMissing with the fix
    return TelemetryStore(workspace.home)


def _parse_now(now: str | None) -> datetime | None:
    if now is None:
        return None
    try:
        return parse_timestamp(now)
    except ValueError:
        raise UsageError(
            f"--now {now!r} is not an ISO 8601 time", "e.g. --now 2026-01-10T02:00:00Z"
        ) from None


def print_ingest(report: IngestReport, *, limit: int = 20) -> None:
    console.print(
        f"stored [bold]{report.stored}[/bold] of {report.records} records from {len(report.files)} file(s); "
        f"malformed {report.malformed_count}, expired {report.expired}, "
        f"skipped spans {report.skipped_spans}, dropped fields {report.dropped_fields}",
        highlight=False,
    )
    redactions = ", ".join(f"{k} {v}" for k, v in sorted(report.redactions.items())) or "none"
    console.print(f"redactions: {redactions}", highlight=False)
    for bad in report.malformed[:limit]:
        console.print(f"  [yellow]malformed[/yellow] {bad.where()}: {bad.reason}", highlight=False)
    if report.malformed_count > limit:
        console.print(f"  … and {report.malformed_count - limit} more (use --json for up to 1000)")
    for unreadable in report.unreadable:
        console.print(f"  [red]unreadable[/red] {unreadable}", highlight=False)


@app.command("ingest")
def ingest_cmd(
    files: list[Path] = typer.Argument(..., help="JSONL event files or OTLP/JSON span exports."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Sanitize and store events; malformed lines are counted and reported, never stored."""
    report = ingest(files, _store(home))
    if as_json:
        print_json(report.as_dict())
    else:
        print_ingest(report)
    if report.unreadable:
        raise typer.Exit(1)


@app.command("collect")
def collect_cmd(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Record the runtime's patch outcomes (from the ledger) as telemetry events."""
    with open_runtime(home) as rt:
        count = collect_ledger(rt)
    if as_json:
        print_json({"recorded": count})
    else:
        console.print(f"recorded {count} patch outcome(s) from the ledger")


@app.command("stats")
def stats_cmd(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Stored events per day and type, and lines skipped as torn or corrupt."""
    store = _store(home)
    read = ReadStats()
    days: dict[str, Counter[str]] = {}
    for event in store.events(stats=read):
        days.setdefault(event["timestamp"][:10], Counter())[str(event.get("event_type"))] += 1
    per_day = {day: dict(sorted(counts.items())) for day, counts in sorted(days.items())}
    data: dict[str, Any] = {
        "root": str(store.root),
        "retention_days": store.retention_days,
        "days": per_day,
        "events": sum(sum(c.values()) for c in days.values()),
        "partial_lines": read.partial,
        "corrupt_lines": read.corrupt,
    }
    if as_json:
        print_json(data)
        return
    table = Table("day", *EVENT_TYPES, "total")
    for day, counts in per_day.items():
        table.add_row(day, *(str(counts.get(t, 0)) for t in EVENT_TYPES), str(sum(counts.values())))
    console.print(table)
    console.print(
        f"{data['events']} events in {store.root}; skipped {read.partial} torn and {read.corrupt} corrupt line(s)",
        highlight=False,
    )


def finding_dict(finding: Finding) -> dict[str, Any]:
    data = asdict(finding)
    data["evidence"] = list(finding.evidence)
    return data


def print_findings(found: list[Finding]) -> None:
    """One line per finding (readable in a pipe as well as a terminal), evidence indented."""
    if not found:
        console.print("[green]no findings[/green]: every tool is within its thresholds")
        return
    for f in found:
        style = SEVERITY_STYLE[f.severity]
        subject = "/".join(x for x in (f.tool, f.agent) if x) or "-"
        console.print(f"[{style}]{f.severity:<8}[/{style}] {f.kind:<18} {subject}: ", end="")
        console.print(f.summary, markup=False, highlight=False)
        for line in f.evidence:
            console.print(f"{'':27}{line}", markup=False, highlight=False)
    console.print(f"{len(found)} finding(s)")


@app.command("eval")
def eval_cmd(
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
    now: str | None = typer.Option(None, "--now", help="Evaluate as of this time (default: now)."),
    window_hours: float = typer.Option(
        24.0, "--window-hours", min=1.0, help="Window under analysis."
    ),
    llm: bool = typer.Option(
        False, "--llm", help="Also ask the LLM analyser (OURO_LLM_* settings)."
    ),
    propose: bool = typer.Option(
        False, "--propose", help="Turn the findings into proposals (pending human approval)."
    ),
    writer: str | None = typer.Option(
        None, "--writer", help="Who writes the diffs: rules|llm (overrides improve.writer.kind)."
    ),
) -> None:
    """Run the stability analysis over the stored telemetry and print the findings."""
    store = _store(home)
    moment = _parse_now(now) or datetime.now(UTC)
    thresholds = Thresholds(window_hours=window_hours)
    found = findings(store, moment, thresholds)
    llm_found: list[Finding] = []
    if llm:
        llm_found = _llm_findings(store, moment, thresholds)
    proposed: list[dict[str, str]] = []
    skipped: list[dict[str, Any]] = []
    if propose:
        from ouroboros.capabilities.improve.analysis.llm import is_verified

        # an LLM finding the rules cannot reproduce is shown, never proposed or alerted
        proposed, skipped = _propose(home, found + [f for f in llm_found if is_verified(f)],
                                     writer)
    if as_json:
        report: dict[str, Any] = {"now": moment.isoformat(),
                                  "findings": [finding_dict(f) for f in found + llm_found]}
        if propose:
            report["proposals"] = proposed
            report["no_proposal"] = skipped
        print_json(report)
        return
    print_findings(found + llm_found)
    for p in proposed:
        console.print(f"proposal {p['id']} ({p['status']}): {p['title']} — {p['message']}")
    for s in skipped:
        console.print(f"no proposal for {s['kind']} {s['subject']}: {s['reason']}",
                      highlight=False, markup=False)


def _propose(home: Path | None, found: list[Finding], writer: str | None
             ) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Hand the findings to the proposals loop (one pipeline: each becomes a file patch)."""
    from ouroboros.capabilities.improve.proposals.loop import Paused
    from ouroboros.interfaces.cli.proposals import propose_report

    with open_runtime(home) as rt:
        try:
            report = propose_report(rt, found, writer=writer)
        except Paused as e:
            raise UsageError(f"no proposals now: {e}", "see `ouro proposals status`") from e
    return ([{"id": o.proposal.id, "title": o.proposal.title, "status": o.proposal.status,
              "message": o.message} for o in report.outcomes],
            [{"kind": s.finding.kind, "subject": s.finding.tool or s.finding.agent or "-",
              "summary": s.finding.summary, "reason": s.reason} for s in report.skipped])


def _llm_findings(store: TelemetryStore, moment: datetime, thresholds: Thresholds) -> list[Finding]:
    from ouroboros.capabilities.improve.analysis import aggregate, findings_of
    from ouroboros.capabilities.improve.analysis.llm import LLMAnalyser, LLMAnalysisError, LLMConfig

    try:
        config = LLMConfig.from_env()
    except LLMAnalysisError as e:
        raise UsageError(str(e), "set OURO_LLM_TIMEOUT / OURO_LLM_BACKOFF to numbers") from e
    if config is None:
        raise UsageError(
            "--llm needs OURO_LLM_BASE_URL and OURO_LLM_MODEL", "set them, or drop --llm"
        )
    since = (
        moment - timedelta(hours=thresholds.window_hours) - timedelta(days=thresholds.baseline_days)
    )
    agg = aggregate(store.events(since=since, until=moment), moment, thresholds)
    try:
        return LLMAnalyser(config).analyse_aggregate(agg, findings_of(agg))
    except LLMAnalysisError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1) from None


def faults_for(names: list[str], now: datetime) -> list[synthetic.Fault]:
    def hours(h: float) -> datetime:
        return now - timedelta(hours=h)

    table: dict[str, synthetic.Fault] = {
        "web-search-timeouts": synthetic.Timeouts(start=hours(6), end=hours(3), rate=0.7),
        "error-spike": synthetic.ErrorSpike(start=hours(2), end=now, rate=0.5),
        "latency": synthetic.LatencyRegression(start=hours(20), end=now),
        "task-failures": synthetic.TaskFailures(start=hours(12), end=now, per_hour=1.5),
        "corrections": synthetic.Corrections(start=hours(20), end=now, per_hour=6),
        "leaked-secrets": synthetic.LeakedSecrets(start=hours(12), end=now, rate=0.02),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UsageError(f"unknown fault {unknown[0]!r}", f"choose from {', '.join(FAULTS)}")
    return [table[n] for n in names]


@app.command("generate")
def generate_cmd(
    out: Path = typer.Argument(
        ..., help="JSONL file to write (raw, unsanitized, like real input)."
    ),
    days: float = typer.Option(8.0, "--days", min=0.01),
    rate: float = typer.Option(600.0, "--rate", min=1.0, help="Events per hour."),
    seed: int = typer.Option(0, "--seed"),
    fault: list[str] = typer.Option([], "--fault", help=f"Inject a fault: {', '.join(FAULTS)}."),
    now: str | None = typer.Option(
        None, "--now", help="End of the generated period (default: now)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write seeded synthetic telemetry with injected faults (for demos and tests)."""
    end = _parse_now(now) or datetime.now(UTC)
    count = synthetic.write_jsonl(
        synthetic.generate(end - timedelta(days=days), end, events_per_hour=rate,
                           faults=faults_for(fault, end), seed=seed),
        out,
    )  # fmt: skip
    if as_json:
        print_json({"file": str(out), "events": count, "faults": fault})
    else:
        console.print(f"wrote {count} events to {out}", highlight=False)


def run_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    """Generated telemetry with injected faults → sanitizer → findings, in a few steps."""
    import tempfile

    now = rt.clock.now()
    store = store_for(rt)
    faults = synthetic.scenario(now)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agents.jsonl"
        count = synthetic.write_jsonl(
            synthetic.generate(
                now - timedelta(days=8), now, events_per_hour=240, faults=faults, seed=7
            ),
            path,
        )
        rng = random.Random(1)
        leak = synthetic.planted_secret("github_token", rng)
        with path.open("a") as handle:
            handle.write(
                json.dumps({"event_type": "tool_call", "tool": "web_search", "prompt": leak}) + "\n"
            )
        say(
            f"Eight days of agent telemetry ({count} events) with injected faults: web_search "
            "times out for three hours, and some error messages carry secrets, IPs and home paths."
        )
        report = ingest([path], store)
    redactions = ", ".join(f"{n} {k}" for k, n in sorted(report.redactions.items()))
    bad = report.malformed[0] if report.malformed else None
    say(
        f"ingest: stored {report.stored}, malformed {report.malformed_count}"
        + (f" ({bad.where()}: {bad.reason})" if bad else "")
        + f"; the sanitizer redacted {redactions}."
    )
    sample = next(
        (
            e
            for e in store.events(since=now - timedelta(hours=12))
            if e.get("error_code") == "AUTH_FAILED"
        ),
        None,
    )
    if sample:
        say(f"A stored error message now reads: {sample['error_message']!r}")
    found = findings(store, now)
    say(
        f"The stability analysis over the last 24 h finds {len(found)} issue(s); healthy tools get none:"
    )
    for f in found:
        say(f"  {f.severity}: {f.kind} on {f.tool or f.agent}: {f.summary}")
    collected = collect_ledger(rt, store)
    say(
        f"The runtime's own patch outcomes become telemetry too: {collected} recorded from the ledger."
    )
