"""Shared CLI plumbing: options every command takes, JSON output, errors, progress.

Commands print results with ``console`` (or ``print_json`` under ``--json``), raise typed
errors for failures (see ``errors.py``), and wrap anything that can take over a second in
``progress_bar`` or ``working`` — both silent under ``--json`` and when stderr is not a
terminal, so scripts see clean output.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

    from ouroboros.interfaces.cli.errors import ErrorReport
    from ouroboros.kernel import Runtime, SubmitOutcome

# No highlighter: it colours runs of digits and so splits hashes and ids into pieces. No
# emoji codes: ":x:" in a user's prompt or reason is text, not a picture.
console = Console(soft_wrap=True, highlight=False, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)

HomeOption = typer.Option(None, "--home", envvar="OURO_HOME", metavar="DIR",
                          help="Workspace directory (default: $OURO_HOME, else ./.ouro).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON (errors too, "
                          "as {\"error\": {...}} on stdout).")

EXIT_FOR_STATUS = {"applied": 0, "rejected": 3, "pending": 4}

#: Capability packages exposing ``register(rt)`` (their patch types and tests).
CAPABILITY_REGISTRARS: list[str] = []

_json_mode = False


def set_json_mode(on: bool) -> None:
    global _json_mode
    _json_mode = on


def json_mode() -> bool:
    """Whether the running command was given ``--json`` (set once per invocation)."""
    return _json_mode


def wants_json(args: list[str]) -> bool:
    """``--json`` among the options (before a ``--`` that ends them)."""
    end = args.index("--") if "--" in args else len(args)
    return "--json" in args[:end]


def open_runtime(home: Path | None, *, capabilities: bool = True) -> Runtime:
    """Open the workspace with every capability's patch types registered.

    ``capabilities=False`` is for commands that only read the ledger (``state``, ``log``,
    ``verify``): they need no patch type, and skipping the registrars spares them the
    imports of wasmtime, numpy and the rest.
    """
    import importlib

    from ouroboros.kernel import IntegrityError, Runtime, WorkspaceMissing

    try:
        rt = Runtime.open(home)
    except OSError as e:  # a file, a symlink loop, a directory we may not read
        raise WorkspaceMissing(f"no Ouroboros workspace at {home}: {e.strerror}",
                               "run `ouro init` or pass --home / set OURO_HOME") from None
    except (ValueError, KeyError, TypeError) as e:
        # Opening folds the ledger; bytes that do not decode mean a damaged file (a verified
        # ledger never holds them). `ouro verify` names the first bad event.
        raise IntegrityError(f"the ledger cannot be read: {type(e).__name__}: {e}",
                             hint="run `ouro verify`; restore ledger.db from a backup") from None
    if rt.backend.count() == 0 and rt.workspace.config.get("genesis"):
        rt.close()
        raise IntegrityError(f"the ledger of {rt.home} is empty, but the workspace was "
                             "initialised (its genesis event is missing)",
                             hint="restore ledger.db from a backup")
    for module in CAPABILITY_REGISTRARS if capabilities else ():
        importlib.import_module(module).register(rt)
    return rt


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_error(report: ErrorReport, as_json: bool) -> None:
    """The one place an error reaches the user: JSON on stdout, or text on stderr."""
    if as_json:
        print_json(report.to_json())
        return
    err_console.print(f"[red]error:[/red] {_escape(report.message)}")
    if report.hint:
        err_console.print(f"  hint: {_escape(report.hint)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def report_outcome(outcome: SubmitOutcome, as_json: bool) -> None:
    """Print a submit outcome and exit with its documented code (0, 3 or 4)."""
    if as_json:
        print_json(outcome.to_dict())
    elif outcome.status == "applied":
        console.print(f"[green]applied[/green] {outcome.patch_hash} at seq {outcome.seq}")
    elif outcome.status == "pending":
        console.print(f"[yellow]pending[/yellow] {outcome.patch_hash}: "
                      f"{_escape(outcome.reason or '')}")
        console.print(f"approve with: ouro approve {outcome.patch_hash[7:19]}")
    else:
        console.print(f"[red]rejected[/red] at {outcome.stage}: {_escape(outcome.reason or '')}")
    raise typer.Exit(EXIT_FOR_STATUS[outcome.status])


# -- progress ------------------------------------------------------------------------


def progress_enabled() -> bool:
    """Progress goes to stderr, and only for a person: not under --json, not in a pipe."""
    return not _json_mode and err_console.is_terminal


@contextmanager
def progress_bar(description: str, total: float | None, *, unit: str = "") -> Iterator[Progress]:
    """A bar with elapsed time and an estimate of what is left; ``progress.advance(task)``
    with the id ``progress.tasks[0].id`` (or use the yielded object's first task)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn() if unit == "" else TextColumn(f"{{task.completed:,.0f}} {unit}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=True,
                  disable=not progress_enabled()) as progress:
        progress.add_task(description, total=total)
        yield progress


@contextmanager
def working(description: str, estimate_s: float | None = None) -> Iterator[None]:
    """A spinner with elapsed time (and the expected duration when known) for a step that
    reports no progress of its own, such as a compiler run."""
    if not progress_enabled():
        yield
        return
    start = time.monotonic()
    hint = f" (usually ~{_duration(estimate_s)})" if estimate_s else ""
    with err_console.status(f"{description}{hint}") as status:

        def tick() -> None:
            status.update(f"{description}{hint} · {_duration(time.monotonic() - start)}")

        import threading

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(0.5):
                tick()

        ticker = threading.Thread(target=loop, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


def printable(text: str) -> str:
    """Text for a terminal: control, bidi and invisible characters (which `tool add` now
    refuses in a description, but a version registered before may hold) shown as \\uXXXX,
    so an escape sequence or a right-to-left override in stored text acts on nothing."""

    def hidden(ch: str) -> bool:
        kind = unicodedata.category(ch)
        return kind in ("Cf", "Cs", "Zl", "Zp") or (kind == "Cc" and ch not in "\t\n")

    return "".join(f"\\u{ord(ch):04x}" if hidden(ch) else ch for ch in text)
