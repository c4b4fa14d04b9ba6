"""``ouro improve``: point the loop at your repository and run it on its schedules."""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ouroboros.interfaces.cli.config import load
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    err_console,
    open_runtime,
    print_json,
    working,
)
from ouroboros.kernel import UsageError
from ouroboros.kernel.settings import FILE_NAME, SettingsError, write_settings
from ouroboros.kernel.workspace import resolve_home

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.analysis.findings import Finding
    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.kernel import Runtime
    from ouroboros.kernel.settings import Settings

app = typer.Typer(cls=OuroGroup, help="The improvement loop on your own repository.",
                  no_args_is_help=True)

EXAMPLE_CONFIG = """\
# Read by Ouroboros at the pinned base commit of every proposal; a proposal can
# never change this file or the schemas it names.
[improve.schemas]
"agents.yaml" = "schemas/agents.schema.json"
"scheduled_tasks.yaml" = "schemas/scheduled_tasks.schema.json"
"config/gateway.json" = "schemas/gateway.schema.json"

[improve.policy]
# where a writer (the rule templates or the LLM) may write
allowed_paths = ["agents.yaml", "scheduled_tasks.yaml", "config/*.json", "docs/*.md"]
"""


def _git(cwd: Path, *args: str) -> str:
    from ouroboros.capabilities.improve.proposals.repo import TargetRepo

    return TargetRepo(cwd).git(*args, action=f"git {args[0]}")


@app.command("init-example")
def init_example(
    path: Path = typer.Argument(..., help="An empty or new directory."),
    as_json: bool = JsonOption,
) -> None:
    """Create the example agent deployment as a git repository (to try `connect` on)."""
    from ouroboros.capabilities.improve.proposals.repo import example_deployment
    from ouroboros.capabilities.improve.proposals.validation import SCHEMA_DIR, SCHEMAS

    try:
        if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
            raise UsageError(f"{path} is not an empty directory", "pick a new directory")
        shutil.copytree(example_deployment(), path, dirs_exist_ok=True)
        schemas = path / "schemas"
        schemas.mkdir(exist_ok=True)
        for name in sorted(set(SCHEMAS.values())):
            shutil.copyfile(SCHEMA_DIR / name, schemas / name)
        (path / FILE_NAME).write_text(EXAMPLE_CONFIG, encoding="utf-8")
    except OSError as e:  # a name too long, a read-only place, a loop of symlinks
        raise UsageError(f"cannot create the example in {path}: {e.strerror or e}",
                         "pick a new directory you can write to") from None
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "-c", "user.name=Ouroboros", "-c", "user.email=ouroboros@localhost",
         "commit", "-q", "-m", "Example agent deployment")
    head = _git(path, "rev-parse", "HEAD").strip()
    if as_json:
        print_json({"path": str(path.resolve()), "branch": "main", "head": head})
    else:
        console.print(f"example deployment in {path} (main at {head[:12]}); next: "
                      f"ouro improve connect {path}", highlight=False, markup=False)


@app.command("connect")
def connect(
    source: str = typer.Argument(..., help="Your repository: a local path or a git remote URL."),
    branch: str | None = typer.Option(None, "--branch", help="The branch proposals merge into."),
    remote_name: str | None = typer.Option(None, "--remote", help="The remote's name."),
    no_push: bool = typer.Option(False, "--no-push", help="Keep branches and merges local."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different target."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Make the loop target your own git repository (recorded in <home>/ouro.toml)."""
    from ouroboros.capabilities.improve.proposals import remote
    from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo
    from ouroboros.capabilities.improve.proposals.target_config import load_target_config

    home_dir = resolve_home(home)
    loaded = load(home, {
        "improve.target.repo": ("connect", source), "improve.target.branch": ("--branch", branch),
        "improve.target.remote": ("--remote", remote_name),
        "improve.target.push": ("--no-push", False if no_push else None)})
    target = loaded.improve.target
    try:
        url = source if remote.is_remote_url(source) else str(Path(source).expanduser().resolve())
        checked_out = remote.checked_out_branch(url)
    except (OSError, RuntimeError) as e:  # a name too long, a loop of symlinks
        raise UsageError(f"cannot use {source!r}: {getattr(e, 'strerror', None) or e}",
                         "give the path or URL of a git repository") from None
    if target.push and checked_out == target.branch:
        raise UsageError(f"{source} has {target.branch} checked out, and git refuses pushes "
                         "into a checked-out branch",
                         f"connect a bare clone (git clone --bare {source} DIR.git) or your real "
                         "remote, or pass --no-push to keep merges in the loop's checkout")
    with open_runtime(home):
        pass  # the workspace must exist (and verify) before it is connected
    path = home_dir / "improve" / "target"
    if (path / ".git").exists():
        current = remote.remote_url(TargetRepo(path, target.branch, target.remote))
        if current != url and not replace:
            raise UsageError(f"the loop already targets {current or 'the example deployment'}",
                             "pass --replace to switch (the old checkout is kept aside)")
        if current != url:
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            path.rename(path.with_name(f"target.replaced-{stamp}"))
    cloned = not (path / ".git").exists()
    try:
        with working(f"cloning {source}" if cloned else "reading the target's config"):
            repo = (remote.clone(url, path, target.branch, target.remote) if cloned
                    else TargetRepo(path, target.branch, target.remote))
            head = repo.head()
            config = load_target_config(lambda p: repo.read(head, p), head, loaded.improve)
    except GitError as e:
        raise UsageError(f"cannot use {source}: {e.reason}",
                         f"check that it is a git repository with a `{target.branch}` branch"
                         ) from e
    except SettingsError as e:
        if cloned:  # the repository's own config is invalid: leave nothing behind
            shutil.rmtree(path, ignore_errors=True)
        raise settings_error(e) from None
    settings_file = home_dir / FILE_NAME
    write_settings(settings_file, {("improve", "target", key): value for key, value in (
        ("repo", url), ("branch", target.branch), ("remote", target.remote),
        ("push", target.push))})  # all four or none: a kill never mixes two targets
    result = {"repo": url, "branch": target.branch, "head": head, "checkout": str(path),
              "config": config.describe(), "settings": str(settings_file)}
    if as_json:
        print_json(result)
    else:
        console.print(f"connected to {url} ({target.branch} at {head[:12]}); "
                      f"{config.describe()}", highlight=False, markup=False)


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "severity": f.severity, "tool": f.tool, "agent": f.agent,
            "summary": f.summary}


@app.command("scan")
def scan_cmd(
    propose: bool = typer.Option(False, "--propose", help="Turn findings into proposals."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """The enhancement scan now: never-used tools, rising failure rates, stale tool
    descriptions, prompt drift."""
    from ouroboros.capabilities.improve.jobs import scan_findings
    from ouroboros.interfaces.cli.proposals import loop_for

    settings = load(home)
    with open_runtime(home) as rt, working("scanning telemetry and the ledger"):
        loop = loop_for(rt)
        found = scan_findings(rt, loop, settings, loop.clock())
        report = loop.propose_report(found) if propose and found else None
    out: dict[str, Any] = {"findings": [_finding_dict(f) for f in found]}
    if report is not None:
        out["proposals"] = [{"id": o.proposal.id, "status": o.proposal.status,
                             "message": o.message} for o in report.outcomes]
        out["no_proposal"] = [{"kind": s.finding.kind, "reason": s.reason}
                              for s in report.skipped]
    if as_json:
        print_json(out)
        return
    for f in found:
        console.print(f"[{f.severity}] {f.kind}: {f.summary}", highlight=False, markup=False)
    if not found:
        console.print("nothing to enhance")
    for item in out.get("proposals", []):
        console.print(f"proposal {item['id']} ({item['status']}): {item['message']}",
                      highlight=False, markup=False)
    for item in out.get("no_proposal", []):
        console.print(f"no proposal for {item['kind']}: {item['reason']}", markup=False)


class CliHost:
    """``ouro improve run`` as a `JobHost`: one runtime, one job at a time on it."""

    def __init__(self, rt: Runtime, settings: Settings) -> None:
        from ouroboros.capabilities.improve.intake.runtime import store_for

        self.rt = rt
        self.home = Path(rt.home)
        self.settings = settings
        self._store = store_for(rt)
        self._lock = threading.Lock()  # a Runtime is used by one thread at a time

    @contextlib.contextmanager
    def runtime(self) -> Iterator[Runtime]:
        with self._lock:
            yield self.rt

    def telemetry(self) -> TelemetryStore:
        return self._store


@app.command("run")
def run_cmd(
    once: bool = typer.Option(False, "--once", help="Run the jobs that are due, then exit."),
    writer: str | None = typer.Option(None, "--writer", help="rules|llm (overrides the setting)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the scheduled jobs (extract, evaluate, tick, scan, notify, as `ouro serve`
    does) on their [schedules]; a job missed during downtime runs once. Ctrl-C stops it."""
    from ouroboros.capabilities.improve.intake.runtime import store_for
    from ouroboros.capabilities.improve.intake.spans import install
    from ouroboros.capabilities.improve.schedule import Scheduler
    from ouroboros.interfaces.cli.proposals import loop_for

    settings = load(home, {"improve.writer.kind": ("--writer", writer)})
    with open_runtime(home) as rt:
        loop = loop_for(rt, writer=writer)  # attached: every job's loop_of(rt) is this one
        install(store_for(rt), settings.telemetry.otlp_endpoint)
        scheduler = Scheduler(CliHost(rt, settings), clock=loop.clock,
                              on_run=None if once or as_json else _print_run)
        if once:
            with working(f"running {', '.join(scheduler.due()) or 'no job'}"):
                runs = scheduler.run_due()
            if as_json:
                print_json({"runs": runs, "jobs": scheduler.status()})
                return
            for r in runs:
                _print_run(r)
            if not runs:
                console.print("no job is due")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if not as_json:
            console.print(f"running {', '.join(scheduler.jobs)} (Ctrl-C stops)",
                          highlight=False)
        scheduler.start()
        try:
            stop.wait()
        finally:
            scheduler.shutdown()  # waits for a running job
        if as_json:
            print_json({"stopped": True, "jobs": scheduler.status()})


def _print_run(run: dict[str, Any]) -> None:
    style = "green" if run["ok"] else "red"
    out = console if run["ok"] else err_console
    out.print(f"[{style}]{run['name']}[/{style}] {run.get('started', '')}: "
              f"{escape(run['summary'])}", highlight=False)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def settings_error(e: SettingsError) -> Exception:
    from ouroboros.interfaces.cli.config import as_cli_error

    return as_cli_error(e)
