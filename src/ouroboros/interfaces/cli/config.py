"""``ouro config show|check``: the effective settings, where each came from, and whether
they validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ouroboros.interfaces.cli.output import HomeOption, JsonOption, console, err_console, print_json
from ouroboros.kernel.settings import LoadedSettings, SettingsError, load_settings
from ouroboros.kernel.workspace import resolve_home

app = typer.Typer(help="Settings: ouro.toml and [tool.ouroboros], validated.",
                  no_args_is_help=True)


def load_or_exit(home: Path | None, as_json: bool,
                 flags: dict[str, tuple[str, Any]] | None = None) -> LoadedSettings:
    """The settings, or the problems printed (JSON on stdout with --json) and exit 2."""
    try:
        return load_settings(resolve_home(home), flags=flags)
    except SettingsError as e:
        if as_json:
            print_json({"error": {"type": "SettingsError", "message": e.message,
                                  "problems": [p.to_dict() for p in e.problems]}})
        else:
            err_console.print("[red]error:[/red] bad configuration", highlight=False)
            for problem in e.problems:
                err_console.print(f"  {problem}", highlight=False, markup=False)
            err_console.print(f"  hint: {e.hint}", highlight=False)
        raise typer.Exit(2) from None


def _flatten(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict) and data:
        return [item for k, v in data.items() for item in _flatten(v, (*prefix, k))]
    return [(prefix, data)]


@app.command("show")
def show(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Print the effective settings and where each value came from."""
    loaded = load_or_exit(home, as_json)
    data = loaded.settings.model_dump(mode="json")
    rows = [(".".join(k), v, loaded.origin(k)) for k, v in _flatten(data)]
    if as_json:
        print_json({"settings": data, "files": loaded.files,
                    "origins": {k: o for k, _, o in rows if o != "default"}})
        return
    console.print(f"files: {', '.join(loaded.files) or '(none: defaults only)'}", highlight=False)
    for key, value, origin in rows:
        shown = json.dumps(value)
        console.print(f"{key} = {shown}" + ("" if origin == "default" else f"   # {origin}"),
                      highlight=False, markup=False)


@app.command("check")
def check(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Validate the settings files (exit 2 with file, line and key of each problem)."""
    loaded = load_or_exit(home, as_json)
    if as_json:
        print_json({"ok": True, "files": loaded.files})
    else:
        console.print(f"[green]ok[/green]: {', '.join(loaded.files) or 'defaults only'}",
                      highlight=False)
