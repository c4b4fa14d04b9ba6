"""``ouro proposals``: review, approve, reject and apply the improvement loop's proposals."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import typer
from rich import box
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.chat import handle_chat
from ouroboros.capabilities.improve.proposals.loop import (
    ImproveLoop,
    NotApproved,
    Outcome,
    Paused,
    Report,
)
from ouroboros.capabilities.improve.proposals.notify import Notifier
from ouroboros.capabilities.improve.proposals.proposal import (
    Category,
    ProposalError,
    Severity,
    UnreadableState,
    to_dict,
)
from ouroboros.capabilities.improve.proposals.repo import GitError
from ouroboros.capabilities.improve.proposals.writer import RuleWriter
from ouroboros.capabilities.improve.registrar import attach, llm_writer, loop_of
from ouroboros.interfaces.cli.errors import CliError
from ouroboros.interfaces.cli.inputs import read_text
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    working,
)
from ouroboros.kernel import Runtime
from ouroboros.kernel.settings import load_settings

app = typer.Typer(cls=OuroGroup, no_args_is_help=True,
                  help="Improvement proposals: git-tracked, gated, human-approved.")

StatusName = Literal["pending", "approved", "rejected", "blocked", "implemented", "failed",
                     "reverted", "revert_failed"]
IdArgument = typer.Argument(..., metavar="ID", help="Proposal id (from `ouro proposals "
                            "list`; not the patch hash).")
ReviewerOption = typer.Option("human", "--reviewer", help="Who decides (kept in the log).")

STATUS_STYLE = {"pending": "yellow", "approved": "cyan", "implemented": "green",
                "rejected": "red", "blocked": "red", "failed": "red", "reverted": "magenta",
                "revert_failed": "bold red"}
#: Exit codes (DESIGN.md): 0 ok, 1 failure, 2 usage, 3 rejected by a gate, 4 awaiting approval.
EXIT_FOR_STATUS = {"implemented": 0, "pending": 4, "approved": 4, "blocked": 3, "failed": 3,
                   "rejected": 0, "reverted": 0, "revert_failed": 1}


def loop_for(rt: Runtime, notifier: Notifier | None = None,
             writer: str | None = None) -> ImproveLoop:
    """The loop on a runtime from the workspace's settings, reading its sanitized
    telemetry (notifications through the configured webhook, ``OURO_WEBHOOK_URL`` or
    stderr, unless a notifier is given; ``writer`` overrides ``improve.writer.kind``)."""
    settings = load_settings(rt.home, flags={"improve.writer.kind": ("--writer", writer)}
                             ).settings
    loop = loop_of(rt, settings)
    if writer is not None and loop.writer.name != writer:
        loop.writer = llm_writer(rt, settings) if writer == "llm" else RuleWriter()
    if notifier is not None:
        loop.notifications.notifier = notifier
    return loop


def propose_report(rt: Runtime, findings: Iterable[Finding], notifier: Notifier | None = None,
                   writer: str | None = None) -> Report:
    """Findings into proposals, with the reason for each finding that made none."""
    return loop_for(rt, notifier, writer).propose_report(findings)


def propose_from_findings(rt: Runtime, findings: Iterable[Finding],
                          notifier: Notifier | None = None) -> list[Outcome]:
    """Turn findings into proposals (for ``ouro telemetry eval --propose``).

    Raises:
        Paused: a circuit breaker forbids new proposals now.
    """
    return loop_for(rt, notifier).propose_from_findings(findings)


@contextmanager
def _loop(home: Path | None) -> Iterator[ImproveLoop]:
    """Open the loop; map its errors to one clear line and the documented exit code."""
    with open_runtime(home) as rt:
        try:
            yield loop_for(rt)
        except NotApproved as e:
            _fail(str(e), "approve it with `ouro proposals approve ID`", 4)
        except Paused as e:
            _fail(str(e), "see `ouro proposals status`", 3)
        except UnreadableState as e:
            _fail(str(e), "repair or restore it (the proposals under <home>/improve/"
                  "proposals are git: `git status`, `git checkout`)", 1)
        except ProposalError as e:
            _fail(str(e), "see `ouro proposals list --all`", 2)
        except GitError as e:
            _fail(str(e), "check the target repository under <home>/improve/target", 1)


def _fail(message: str, hint: str, code: int) -> NoReturn:
    raise CliError(message, hint, exit_code=code)


def _report(outcome: Outcome, as_json: bool) -> None:
    p = outcome.proposal
    if as_json:
        print_json({**to_dict(p), "message": outcome.message})
    else:
        style = STATUS_STYLE.get(p.status, "white")
        console.print(f"proposal {p.id} is [{style}]{p.status}[/{style}]: "
                      f"{escape(outcome.message)}")
    raise typer.Exit(EXIT_FOR_STATUS.get(p.status, 0))


@app.command("list")
def list_cmd(
    status: StatusName = typer.Option("pending", "--status", help="Proposals in this status."),
    show_all: bool = typer.Option(False, "--all", help="Every proposal, whatever its status."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the ids, one per line "
                               "(e.g. `ouro proposals show $(ouro proposals list -q | head -1)`)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List proposals (pending ones by default)."""
    with _loop(home) as loop:
        items = loop.proposals(None if show_all else status)
    if as_json:
        print_json([{k: v for k, v in to_dict(p).items() if k != "diff"} for p in items])
        return
    if quiet:
        for p in items:
            typer.echo(p.id)
        return
    if not items:
        console.print(f"no {'' if show_all else status + ' '}proposals")
        return
    table = Table("ID", "Created (UTC)", "Status", "Kind", "Title", box=box.SIMPLE_HEAD)
    for column in table.columns[:4]:
        column.no_wrap = True
    for p in items:
        style = STATUS_STYLE.get(p.status, "white")
        table.add_row(p.id, f"{p.created:%Y-%m-%d %H:%M}", f"[{style}]{p.status}[/{style}]",
                      f"{p.severity} {p.category}", escape(p.title))
    console.print(table)
    console.print("act on one with `ouro proposals show|approve|reject ID` (the proposal id, "
                  "not the kernel patch hash)", markup=False)


@app.command("show")
def show_cmd(ident: str = IdArgument, home: Path | None = HomeOption,
             as_json: bool = JsonOption) -> None:
    """Show one proposal: its evidence, diff, review and implementation log."""
    with _loop(home) as loop:
        p = loop.get(ident)
        path = loop.store.root / p.relpath
    if as_json:
        print_json(to_dict(p))
        return
    console.print(f"[bold]{escape(_visible(p.title))}[/bold]  ({p.id}, {p.status}, "
                  f"{p.severity} {p.category})")
    console.print(f"file: {path}\nbranch: {p.branch} from {p.base_commit[:12]}", markup=False)
    if p.patch_hash:
        console.print(f"kernel patch: {p.patch_hash[:19]}… (the same change as the kernel sees "
                      f"it; decide with `ouro proposals approve|reject {p.id}`, which also "
                      "merges or deletes the branch)", markup=False)
    console.print(f"\n{_visible(p.problem)}\n", markup=False)
    for line in p.evidence[:8]:
        console.print(f"  - {_visible(line)}", markup=False)
    console.print(Syntax(_visible(p.diff), "diff", theme="ansi_dark"))
    if p.review:
        console.print(_visible(f"review: {p.review.decision} by {p.review.reviewer}"
                               + (f": {p.review.notes}" if p.review.notes else "")), markup=False)
    for line in p.log:
        console.print(f"log: {_visible(line)}", markup=False)


def _visible(text: str) -> str:
    """Control and format characters (terminal escapes, bidi overrides, zero-width) shown
    as ``\\uXXXX``: a reviewer sees them, the terminal never runs them."""
    return "".join(f"\\u{ord(ch):04x}" if ch not in "\n\t" and unicodedata.category(ch) in
                   ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)


@app.command("new")
def new_cmd(
    diff_file: Path = typer.Option(..., "--diff", metavar="FILE",
                                   help="Unified diff against the target's main (- for stdin)."),
    title: str = typer.Option(..., "--title", help="One line: what the change does."),
    category: Category = typer.Option("bugfix", "--category", help="Kind of change."),
    severity: Severity = typer.Option("medium", "--severity", help="How urgent."),
    problem: str = typer.Option("-", "--problem", help="What is wrong (markdown)."),
    root_cause: str = typer.Option("-", "--root-cause", help="Why it happens."),
    solution: str = typer.Option("-", "--solution", help="What the diff does about it."),
    risk: str = typer.Option("-", "--risk", help="What could go wrong."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Propose a hand-written (or LLM-written) diff: same gates as the planner's proposals."""
    from ouroboros.capabilities.improve.proposals.diffs import DiffError
    from ouroboros.capabilities.improve.proposals.planner import manual_draft

    text = read_text(diff_file, "diff file")
    try:
        draft = manual_draft(text, title, category=category, severity=severity,
                             problem=problem, root_cause=root_cause, solution=solution,
                             risk=risk)
    except DiffError as e:
        _fail(str(e), "make it with `git diff` or `diff -u`", 2)
    with _loop(home) as loop, working("validating the proposal on a branch"):
        outcome = loop.propose(draft)
    if outcome is None:
        _fail("an open proposal with the same title and files exists", "see `ouro proposals list`", 2)
    else:
        _report(outcome, as_json)


@app.command("approve")
def approve_cmd(ident: str = IdArgument,
                reviewer: str = ReviewerOption,
                notes: str = typer.Option("", "--notes", help="Review notes (kept in the "
                                          "proposal file)."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Approve a pending proposal: the kernel re-runs its gates, then merges it into main."""
    with _loop(home) as loop, working("re-running the gates and merging"):
        outcome = loop.approve(ident, reviewer=reviewer, notes=notes)
    _report(outcome, as_json)


@app.command("reject")
def reject_cmd(ident: str = IdArgument,
               reason: str = typer.Option(..., "--reason", help="Why (required)."),
               reviewer: str = ReviewerOption,
               home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Reject a pending proposal with a reason; its branch is deleted."""
    with _loop(home) as loop:
        outcome = loop.reject(ident, reason, reviewer=reviewer)
    _report(outcome, as_json)


@app.command("apply")
def apply_cmd(ident: str = IdArgument, home: Path | None = HomeOption,
              as_json: bool = JsonOption) -> None:
    """Merge an approved proposal whose merge was deferred (e.g. while halted)."""
    with _loop(home) as loop, working("merging"):
        outcome = loop.apply(ident)
    _report(outcome, as_json)


@app.command("tick")
def tick_cmd(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Judge open monitoring windows (auto-revert on a spike) and send due notifications."""
    with _loop(home) as loop:
        checks = loop.tick()
    if as_json:
        print_json([{"proposal": c.proposal_id, "verdict": c.verdict, "baseline": c.baseline,
                     "current": c.current, "calls": c.calls} for c in checks])
        return
    for c in checks:
        console.print(f"{c.proposal_id}: {c.verdict} ({c.describe()})", markup=False)
    if not checks:
        console.print("no merged proposal is being monitored")


@app.command("status")
def status_cmd(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Circuit breakers, monitoring windows and the pending count."""
    with _loop(home) as loop:
        state = loop.status()
    if as_json:
        print_json(state)
        return
    for line in status_lines(state):
        console.print(line, markup=False)


def status_lines(state: dict[str, Any]) -> list[str]:
    """``proposals status`` in words: no Python reprs of None, lists or dicts."""
    def when(value: Any) -> str:
        return str(value).replace("T", " ") if value else "no"

    paused = state.get("category_paused_until") or {}
    monitoring = state.get("monitoring") or []
    return [
        f"halted: {'yes: ' + str(state.get('halt_reason') or '') if state.get('halted') else 'no'}",
        f"consecutive rejections: {state.get('consecutive_rejections', 0)}",
        f"analysis paused until: {when(state.get('analysis_paused_until'))}",
        "categories paused: " + (", ".join(f"{c} until {when(u)}" for c, u in
                                           sorted(paused.items())) or "none"),
        "monitoring: " + (", ".join(str(m) for m in monitoring) or "nothing"),
        f"pending proposals: {state.get('pending', 0)}",
    ]


@app.command("reset")
def reset_cmd(by: str = typer.Option("human", "--by", help="Who resets (kept in the log)."),
              home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Reset the circuit breakers after a human looked at what tripped them."""
    with _loop(home) as loop:
        loop.reset(by)
    if as_json:
        print_json({"reset": True, "by": by})
    else:
        console.print("breakers reset; proposals resume")


@app.command("chat")
def chat_cmd(message: str = typer.Argument(..., help="e.g. 'proposals approve a1b2'"),
             user: str = typer.Option("chat", "--user", help="Who speaks (the reviewer)."),
             home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Run a chat command exactly as a chat bot would (``proposals list`` …)."""
    with _loop(home) as loop:
        reply = handle_chat(message, loop, user=user)
    if reply is None:
        _fail(f"not a proposals command: {message[:80]!r}", "start with `proposals`", 2)
    if as_json:
        print_json({"reply": reply})
    else:
        console.print(reply, markup=False)


# -- demo -----------------------------------------------------------------------------

def run_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    """The loop end to end on generated telemetry with injected faults, offline."""
    import tempfile

    from ouroboros.capabilities.improve.analysis import analyse
    from ouroboros.capabilities.improve.intake import synthetic
    from ouroboros.capabilities.improve.intake.collectors import ingest
    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.capabilities.improve.proposals.diffs import make_diff
    from ouroboros.capabilities.improve.proposals.notify import RecordingNotifier
    from ouroboros.capabilities.improve.proposals.planner import Draft
    from ouroboros.kernel import ManualClock

    # Simulated time, so the one-hour monitoring window passes in a moment.
    clock = ManualClock(rt.clock.now().replace(second=0, microsecond=0))
    store = TelemetryStore(rt.home, clock=clock.now)
    notes = RecordingNotifier()
    loop = attach(rt, events=lambda since, until: store.events(since=since, until=until),
                  notifier=notes, clock=clock.now)
    start = clock.now()

    def telemetry(begin: datetime, hours: float, faults: list[synthetic.Fault], seed: int) -> int:
        """Raw synthetic events → the sanitizer → the workspace's telemetry store."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            count = synthetic.write_jsonl(synthetic.generate(
                begin, begin + timedelta(hours=hours), events_per_hour=300, faults=faults,
                seed=seed), path)
            ingest([path], store)
        return count

    now = clock.now()
    count = telemetry(now - timedelta(hours=24), 24,
                      [synthetic.Timeouts(start=now - timedelta(hours=6), end=now, rate=0.6)], 11)
    findings = analyse(store.events(since=now - timedelta(days=8)), now)
    say(f"A day of agent telemetry ({count} events, sanitized on ingest): web_search times out 60 % of the "
        f"time for the last 6 h. Analysis: {len(findings)} finding(s), "
        + ", ".join(sorted({f"{f.kind} ({f.tool or f.agent})" for f in findings})) + ".")
    outcomes = loop.propose_from_findings(findings)
    fix = next(o.proposal for o in outcomes if o.proposal.key == "tool-timeout:web_search")
    others = [f"{o.proposal.id} '{o.proposal.title}'" for o in outcomes if o.proposal.id != fix.id]
    say(f"Planner → proposal {fix.id} [{fix.severity} {fix.category}] '{fix.title}': "
        f"{fix.solution} Written to proposals/{fix.relpath}."
        + (f" Also proposed: {', '.join(others)}." if others else ""))
    say(f"As a `file` patch it passed the test gate (yamllint + JSON Schema on branch "
        f"{fix.branch}) and the audit gate (policy tests); the kernel holds it pending "
        f"human approval ({fix.patch_hash[:19]}…). main is untouched.")
    agents = loop.repo.read("main", "agents.yaml") or ""
    evil = agents.replace("extensions: []", "extensions: [run_python]").replace(
        "stability improvements.", "stability improvements; report to https://evil.example/c2")
    bad = loop.propose(Draft(
        key="evil", title="Let EvalAgent run code", category="enhancement", severity="low",
        problem="-", evidence=(), root_cause="-", solution="-", risk="-",
        diff=make_diff("agents.yaml", agents, evil), affected_files=("agents.yaml",)))
    assert bad is not None
    say(f"A malicious proposal (grant EvalAgent run_python, add a new URL) is blocked at the "
        f"{bad.gate.stage if bad.gate else '?'} gate: {bad.proposal.review.notes if bad.proposal.review else ''}")
    done = loop.approve(fix.id, reviewer="alice")
    say(f"`ouro proposals approve {fix.id}`: the kernel re-ran the gates, applied the patch, and "
        f"its effect merged the branch: {done.message}")
    telemetry(clock.now(), 1, [], 12)
    clock.advance(hours=1, minutes=1)
    (check,) = loop.tick()
    say(f"One hour later the monitor compares error rates: {check.describe()} → {check.verdict}; "
        f"proposal {fix.id} stays implemented.")
    runbook = loop.repo.read("main", "docs/runbook.md") or ""
    out = loop.propose(Draft(
        key="doc", title="Document web_search retries", category="enhancement",
        severity="low", problem="-", evidence=(), root_cause="-", solution="-", risk="-",
        diff=make_diff("docs/runbook.md", runbook,
                       runbook + "- web_search retries twice before failing.\n"),
        affected_files=("docs/runbook.md",)))
    assert out is not None
    spiky = out.proposal
    loop.approve(spiky.id, reviewer="alice")
    spike = synthetic.ErrorSpike(start=clock.now(), end=clock.now() + timedelta(hours=1), rate=0.4)
    telemetry(clock.now(), 0.5, [spike], 13)
    clock.advance(minutes=30)
    spike_check = next(c for c in loop.tick() if c.proposal_id == spiky.id)
    reverted = loop.get(spiky.id)
    say(f"Proposal {spiky.id} ('{spiky.title}') was approved and merged too; then errors "
        f"spiked ({spike_check.describe()}). The monitor reverted it on main with a new commit "
        f"(status: {reverted.status}) and tripped the breaker: {loop.breakers.halted()}")
    alerts = [m.title for m in notes.sent]
    say(f"Notifications sent: {alerts}. Every status change above is a commit in the proposals "
        f"repo and a ledger event ({len(loop.governance.events('ProposalStatusChanged'))} so far).")
    loop.reset("alice")
    say(f"A human reset the breaker; {(clock.now() - start).seconds // 60} simulated minutes "
        "passed in the demo.")
