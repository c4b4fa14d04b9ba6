"""``ouro telemetry``: ingest, collect, evaluate and generate sanitized telemetry."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ouroboros.capabilities.improve.analysis import Finding, Thresholds
from ouroboros.capabilities.improve.analysis.aggregate import MAX_KEYS
from ouroboros.capabilities.improve.analysis.workspace import evaluate, findings
from ouroboros.capabilities.improve.intake import synthetic
from ouroboros.capabilities.improve.intake.collectors import IngestReport, ingest
from ouroboros.capabilities.improve.intake.events import (
    EVENT_TYPES,
    LOCAL_SOURCE,
    parse_timestamp,
)
from ouroboros.capabilities.improve.intake.runtime import collect_ledger, store_for
from ouroboros.capabilities.improve.intake.store import ReadStats, TelemetryStore
from ouroboros.interfaces.cli.errors import CliError, usage
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    progress_bar,
    working,
)
from ouroboros.kernel import Runtime, UsageError, WorkspaceMissing
from ouroboros.kernel.workspace import Workspace, resolve_home

app = typer.Typer(
    cls=OuroGroup, help="Sanitized telemetry and its analysis (the EvalAgent).",
    no_args_is_help=True,
)

#: Bounds that keep a typo from asking for centuries of data or an endless window.
MAX_WINDOW_HOURS = 24 * 366
MAX_DAYS = 3650
MAX_GENERATED_EVENTS = 20_000_000

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
FAULTS = (
    "web-search-timeouts",
    "error-spike",
    "latency",
    "task-failures",
    "corrections",
    "leaked-secrets",
)
FaultName = StrEnum("FaultName", {name.replace("-", "_"): name for name in FAULTS})  # type: ignore[misc]


def _store(home: Path | None) -> TelemetryStore:
    where = resolve_home(home)
    try:
        workspace = Workspace.load(where)  # raises WorkspaceMissing with the fix
    except OSError as e:
        raise WorkspaceMissing(f"no Ouroboros workspace at {where}: {e.strerror}",
                               "run `ouro init` or pass --home / set OURO_HOME") from None
    return TelemetryStore(workspace.home)


def _trusted(store: TelemetryStore) -> frozenset[str]:
    """The runtime's own source and the configured ``telemetry.trusted_sources``."""
    from ouroboros.kernel.settings import load_settings

    settings = load_settings(store.root.parent.parent).settings
    return frozenset({LOCAL_SOURCE, *settings.telemetry.trusted_sources})


def _parse_now(now: str | None) -> datetime | None:
    if now is None:
        return None
    try:
        moment = parse_timestamp(now)
    except (ValueError, OverflowError):
        raise UsageError(
            f"--now {now[:40]!r} is not an ISO 8601 time", "e.g. --now 2026-01-10T02:00:00Z"
        ) from None
    if not 1971 <= moment.year <= 9000:
        raise UsageError(f"--now {now[:40]!r} is outside the years 1971 to 9000")
    return moment


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
    for path in files:  # every file checked before any event is stored
        if not path.exists():
            raise CliError(f"{path} does not exist", "check the path", code="not_found")
        if not path.is_file():
            raise usage(f"{path} is not a regular file", "give JSONL or OTLP/JSON files")
    store = _store(home)
    report = _ingest_with_progress(files, store)
    if as_json:
        print_json(report.as_dict())
    else:
        print_ingest(report)
    if report.unreadable:
        raise typer.Exit(1)


def _ingest_with_progress(files: list[Path], store: TelemetryStore) -> IngestReport:
    """``ingest`` under a bar counted in records; the total is estimated from the files'
    sizes and the mean line length of their first 64 KiB."""
    total_bytes, sample_bytes, sample_lines = 0, 0, 0
    for path in files:
        try:
            total_bytes += path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(65536)
        except OSError:
            continue  # ingest reports the file as unreadable; the estimate skips it
        sample_bytes += len(head)
        sample_lines += head.count(b"\n")
    estimate = total_bytes / (sample_bytes / sample_lines) if sample_lines else None
    with progress_bar("ingesting", estimate, unit="records") as progress:
        task = progress.tasks[0].id
        report = ingest(files, store,
                        progress=lambda done: progress.update(task, completed=done))
    return report


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
    now: str | None = typer.Option(None, "--now", metavar="TIME",
                                   help="Evaluate as of this ISO 8601 time (default: now)."),
    window_hours: float = typer.Option(
        24.0, "--window-hours", min=1.0, max=MAX_WINDOW_HOURS,
        help="Hours of telemetry under analysis (before --now)."
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
    thresholds = Thresholds(window_hours=window_hours, trusted_sources=_trusted(store))
    if llm:
        from ouroboros.capabilities.improve.analysis.llm import LLMAnalysisError, LLMConfig

        try:
            configured = LLMConfig.from_env()
        except LLMAnalysisError as e:
            raise UsageError(str(e), "set OURO_LLM_TIMEOUT / OURO_LLM_BACKOFF to numbers") from e
        if configured is None:
            raise CliError("--llm needs OURO_LLM_BASE_URL and OURO_LLM_MODEL",
                           "set them, or drop --llm", exit_code=2)
    found, agg, read = evaluate(store, moment, thresholds)
    unseen = {"overflow": agg.overflow, "unreadable": agg.unreadable + read.corrupt,
              "partial": read.partial}
    in_window = None if found else sum(
        1 for _ in store.events(since=moment - timedelta(hours=window_hours), until=moment))
    llm_found: list[Finding] = []
    llm_error: CliError | None = None
    if llm:
        try:
            llm_found = _llm_findings(store, moment, thresholds)
        except CliError as e:
            llm_error = e  # the rule findings are still worth showing
    proposed: list[dict[str, str]] = []
    skipped: list[dict[str, Any]] = []
    if propose:
        from ouroboros.capabilities.improve.analysis.llm import is_verified

        # an LLM finding the rules cannot reproduce is shown, never proposed or alerted
        candidates = found + [f for f in llm_found if is_verified(f)]
        with working(f"proposing fixes for {len(candidates)} finding(s)"):
            proposed, skipped = _propose(home, candidates, writer)
    if as_json:
        report: dict[str, Any] = {"now": moment.isoformat(),
                                  "findings": [finding_dict(f) for f in found + llm_found]}
        if in_window is not None:
            report["events_in_window"] = in_window
        if any(unseen.values()):
            report["not_analysed"] = unseen
        if propose:
            report["proposals"] = proposed
            report["no_proposal"] = skipped
        if llm_error is not None:
            report["llm_error"] = {"message": llm_error.message, "hint": llm_error.hint}
        print_json(report)
    else:
        if in_window == 0:
            console.print(f"no events in the {window_hours:g} h window ending "
                          f"{moment:%Y-%m-%d %H:%M} UTC: nothing to analyse",
                          style="yellow", markup=False)
            console.print("  ingest telemetry with `ouro telemetry ingest FILE`, or evaluate "
                          "another time with --now", markup=False)
        else:
            print_findings(found + llm_found)
        _print_unseen(unseen)
        for p in proposed:
            console.print(f"proposal {p['id']} ({p['status']}): {p['title']} — "
                          f"{p['message']}", markup=False)
        for s in skipped:
            console.print(f"no proposal for {s['kind']} {s['subject']}: {s['reason']}",
                          highlight=False, markup=False)
        if found and not propose:
            console.print("turn these into proposals with `ouro telemetry eval --propose`",
                          markup=False)
    if llm_error is not None:
        if not as_json:
            console.print(f"LLM analysis failed: {llm_error.message}", style="red",
                          markup=False)
        raise typer.Exit(1)


def _print_unseen(unseen: dict[str, int]) -> None:
    """What the analysis could not see: never silently."""
    if unseen["overflow"]:
        console.print(f"overflow: {unseen['overflow']} event(s) or name(s) not analysed, a "
                      f"table already held {MAX_KEYS} distinct names (tools, agents, error "
                      "patterns, sessions): a flood of fresh names can hide a real one",
                      style="yellow", markup=False, highlight=False)
    skipped = unseen["unreadable"] + unseen["partial"]
    if skipped:
        console.print(f"skipped: {skipped} stored line(s) unreadable (not JSON, torn, or "
                      "without a usable timestamp)", style="yellow", markup=False,
                      highlight=False)


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
        raise CliError(
            "--llm needs OURO_LLM_BASE_URL and OURO_LLM_MODEL", "set them, or drop --llm",
            exit_code=2,
        )
    since = (
        moment - timedelta(hours=thresholds.window_hours) - timedelta(days=thresholds.baseline_days)
    )
    agg = aggregate(store.events(since=since, until=moment), moment, thresholds)
    try:
        return LLMAnalyser(config).analyse_aggregate(agg, findings_of(agg))
    except LLMAnalysisError as e:
        raise CliError(str(e), "check OURO_LLM_BASE_URL / OURO_LLM_MODEL", exit_code=1,
                       code="failure") from None


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
    days: float = typer.Option(8.0, "--days", min=0.01, max=MAX_DAYS,
                               help="Days of telemetry, ending at --now."),
    rate: float = typer.Option(600.0, "--rate", min=1.0, max=1_000_000.0,
                               help="Events per hour."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same file)."),
    fault: list[FaultName] = typer.Option([], "--fault", metavar="FAULT",
                                          help=f"Inject a fault (repeatable): "
                                               f"{', '.join(FAULTS)}."),
    now: str | None = typer.Option(
        None, "--now", metavar="TIME", help="End of the generated period (default: now)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write seeded synthetic telemetry with injected faults (for demos and tests)."""
    from ouroboros.interfaces.cli.inputs import writable_parent

    if days * 24 * rate > MAX_GENERATED_EVENTS:
        raise usage(f"--days {days:g} at --rate {rate:g} is {days * 24 * rate:,.0f} events; "
                    f"the limit is {MAX_GENERATED_EVENTS:,}")
    writable_parent(out, "output file")
    end = _parse_now(now) or datetime.now(UTC)
    total = days * 24 * rate
    with progress_bar(f"generating {out.name}", total, unit="events") as progress:
        task = progress.tasks[0].id

        def counted(events: Any) -> Any:
            for n, event in enumerate(events, start=1):
                if n % 2000 == 0:
                    progress.update(task, completed=n)
                yield event

        count = synthetic.write_jsonl(
            counted(synthetic.generate(end - timedelta(days=days), end, events_per_hour=rate,
                                       faults=faults_for([str(f) for f in fault], end), seed=seed)),
            out,
        )  # fmt: skip
    if as_json:
        print_json({"file": str(out), "events": count, "faults": [str(f) for f in fault]})
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
