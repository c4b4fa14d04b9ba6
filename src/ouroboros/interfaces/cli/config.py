"""``ouro config show|check``: the effective settings, where each came from, and whether
they validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ouroboros.interfaces.cli.errors import CliError
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import HomeOption, JsonOption, console, print_json
from ouroboros.kernel.errors import WorkspaceMissing
from ouroboros.kernel.settings import LoadedSettings, Settings, SettingsError, load_settings
from ouroboros.kernel.workspace import resolve_home

app = typer.Typer(cls=OuroGroup, help="The workspace's settings (ouro.toml, \\[tool.ouroboros]).",
                  no_args_is_help=True)


def as_cli_error(e: SettingsError) -> CliError:
    """Exit 2 with every problem: in the message (text) and as ``details.problems`` (JSON,
    each with file, line and key)."""
    problems = [p.to_dict() for p in e.problems]
    lines = "; ".join(str(p) for p in e.problems)
    return CliError(f"bad configuration: {lines}", e.hint, code="usage",
                    details={"problems": problems})


def load_loaded(home: Path | None,
                flags: dict[str, tuple[str, Any]] | None = None) -> LoadedSettings:
    """The settings with their origins.

    Raises:
        WorkspaceMissing: the home directory does not exist (a directory with only an
            ``ouro.toml`` is fine: settings can be checked before ``ouro init``).
        CliError: they do not validate (exit 2, every problem named).
    """
    where = resolve_home(home)
    if not where.is_dir():
        raise WorkspaceMissing(f"no Ouroboros workspace at {where}",
                               "run `ouro init` there, or pass --home / set OURO_HOME")
    try:
        return load_settings(where, flags=flags)
    except SettingsError as e:
        raise as_cli_error(e) from None


def load(home: Path | None, flags: dict[str, tuple[str, Any]] | None = None) -> Settings:
    """The effective settings (see `load_loaded`)."""
    return load_loaded(home, flags).settings


def _flatten(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict) and data:
        return [item for k, v in data.items() for item in _flatten(v, (*prefix, k))]
    return [(prefix, data)]


@app.command("show")
def show(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Print the effective settings and where each value came from."""
    loaded = load_loaded(home)
    data = loaded.settings.model_dump(mode="json")
    rows = [(".".join(k), v, loaded.origin(k)) for k, v in _flatten(data)]
    if as_json:
        print_json({"settings": data, "files": loaded.files,
                    "origins": {k: o for k, _, o in rows if o != "default"}})
        return
    console.print(f"files: {', '.join(loaded.files) or '(none: defaults only)'}",
                  highlight=False, markup=False)
    for key, value, origin in rows:
        shown = json.dumps(value)
        console.print(f"{key} = {shown}" + ("" if origin == "default" else f"   # {origin}"),
                      highlight=False, markup=False)


@app.command("check")
def check(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Validate the settings files (exit 2 with file, line and key of each problem)."""
    loaded = load_loaded(home)
    if as_json:
        print_json({"ok": True, "files": loaded.files})
    else:
        from rich.markup import escape

        console.print(f"[green]ok[/green]: {escape(', '.join(loaded.files) or 'defaults only')}",
                      highlight=False)
