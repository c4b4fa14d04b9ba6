"""Shared CLI plumbing: the workspace option, JSON output, and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ouroboros.kernel import Runtime, SubmitOutcome

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

HomeOption = typer.Option(None, "--home", envvar="OURO_HOME",
                          help="Workspace directory (default: ./.ouro).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")

EXIT_FOR_STATUS = {"applied": 0, "rejected": 3, "pending": 4}


#: Capability packages exposing ``register(rt)`` (their patch types and tests).
CAPABILITY_REGISTRARS: list[str] = []


def open_runtime(home: Path | None) -> Runtime:
    """Open the workspace with every capability's patch types registered."""
    import importlib

    rt = Runtime.open(home)
    for module in CAPABILITY_REGISTRARS:
        importlib.import_module(module).register(rt)
    return rt


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def report_outcome(outcome: SubmitOutcome, as_json: bool) -> None:
    """Print a submit outcome and exit with its documented code (0, 3 or 4)."""
    if as_json:
        print_json(outcome.to_dict())
    elif outcome.status == "applied":
        console.print(f"[green]applied[/green] {outcome.patch_hash} at seq {outcome.seq}")
    elif outcome.status == "pending":
        console.print(f"[yellow]pending[/yellow] {outcome.patch_hash}: {outcome.reason}")
        console.print(f"approve with: ouro approve {outcome.patch_hash[7:19]}")
    else:
        console.print(f"[red]rejected[/red] at {outcome.stage}: {outcome.reason}")
    raise typer.Exit(EXIT_FOR_STATUS[outcome.status])
