"""The ``ouro`` command: kernel verbs plus each capability's commands.

Two things live here for every command, present and future:

* **one error path** — ``OuroGroup.main`` runs a command and turns whatever it raises
  into the documented exit code and a one-line message (or ``{"error": {...}}`` on stdout
  under ``--json``); see ``errors.py`` and docs/cli.md;
* **lazy mounting** — a capability's commands are imported only when that command runs
  (``ouro --help`` and ``ouro state`` never import numpy, wasmtime or matplotlib).
  Register a command group with one line in ``LAZY_GROUPS``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, NoReturn

import typer
from typer._click import core as click_core
from typer._click import exceptions as click_exceptions
from typer.core import TyperCommand, TyperGroup

from ouroboros.interfaces.cli import output, typer_help
from ouroboros.interfaces.cli.inputs import harden

DEBUG_ENV = "OURO_DEBUG"

typer_help.install()


def run_guarded(invoke: Callable[[], Any], args: Sequence[str]) -> int:
    """Run a parsed-and-invoked command; return its exit code, never raise (but for
    ``SystemExit`` from a nested standalone call, which carries its own code)."""
    as_json = output.wants_json(list(args))
    output.set_json_mode(as_json)
    _tolerant_streams()
    try:
        rv = invoke()
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click_exceptions.NoArgsIsHelpError:
        return 2  # the help is already printed: `ouro tool` alone is a usage error
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return _report(KeyboardInterrupt(), as_json)
    except BrokenPipeError:
        _silence_stdout()  # `ouro log | head`: the reader left; nothing to tell it
        return 1
    except (Exception, KeyboardInterrupt) as e:  # the one place that catches them all
        return _report(e, as_json)


def _report(e: BaseException, as_json: bool) -> int:
    from ouroboros.interfaces.cli.errors import describe

    report = describe(e)
    if report.code == "internal" and os.environ.get(DEBUG_ENV):
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    try:
        output.print_error(report, as_json)
    except BrokenPipeError:
        _silence_stdout()
    return report.exit_code


def _tolerant_streams() -> None:
    """Text that is not valid UTF-8 (a file name from argv, a value from a file) is shown
    escaped instead of failing the command when printed."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or odd stream
                reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - in-process runs have no fd
        pass


class OuroGroup(TyperGroup):
    """A command group whose ``main`` is the one error path (use it as ``cls=`` for any
    Typer app that may also be invoked on its own, e.g. in tests)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        harden(self)
        code = run_guarded(lambda: super(OuroGroup, self).main(
            args=argv, prog_name=prog_name, complete_var=complete_var,
            standalone_mode=False, windows_expand_args=windows_expand_args, **extra), argv)
        if standalone_mode:
            sys.exit(code)
        return code


@dataclass(frozen=True)
class LazyGroup:
    """A command group imported only when it runs: ``loader`` returns its Typer app."""

    help: str
    loader: Callable[[], typer.Typer]
    panel: str = "Capabilities"


def _module_app(module: str, attribute: str = "app") -> Callable[[], typer.Typer]:
    def load() -> typer.Typer:
        app: typer.Typer = getattr(importlib.import_module(module), attribute)
        return app

    return load


def _tool_app() -> typer.Typer:
    from ouroboros.interfaces.cli import tool, tool_authoring

    if not getattr(tool.app, "_ouro_authoring", False):
        tool_authoring.register(tool.app)
        tool.app._ouro_authoring = True  # type: ignore[attr-defined]
    return tool.app


#: Every capability's command group, by name. The help text is shown by ``ouro --help``
#: without importing the module (a test keeps it equal to the group's own help).
LAZY_GROUPS: dict[str, LazyGroup] = {
    "tool": LazyGroup("Versioned WASM tools: add, run, list, describe, test, search.",
                      _tool_app),
    "flux": LazyGroup("FLUX bytecode VM: assemble, verify, run and evolve programs.",
                      _module_app("ouroboros.interfaces.cli.flux")),
    "telemetry": LazyGroup("Sanitized telemetry and its analysis (the EvalAgent).",
                           _module_app("ouroboros.interfaces.cli.telemetry")),
    "proposals": LazyGroup("Improvement proposals: git-tracked, gated, human-approved.",
                           _module_app("ouroboros.interfaces.cli.proposals")),
    "improve": LazyGroup("The improvement loop on your own repository.",
                         _module_app("ouroboros.interfaces.cli.improve")),
    "config": LazyGroup("The workspace's settings (ouro.toml, \\[tool.ouroboros]).",
                        _module_app("ouroboros.interfaces.cli.config"), panel="Workspace"),
    "token": LazyGroup("Bearer tokens for `ouro serve` (stored as hashes only).",
                       _module_app("ouroboros.interfaces.cli.serve_cmds", "token_app"),
                       panel="Workspace"),
    "evolve": LazyGroup("Evolve parameters, route weights and prompts with the generic engine.",
                        _module_app("ouroboros.interfaces.cli.evolve")),
    "agent": LazyGroup("Set up an agent that may change its own prompt, safely.",
                       _module_app("ouroboros.interfaces.cli.agent"), panel="Workspace"),
}


class RootGroup(OuroGroup):
    """The ``ouro`` group: eager kernel verbs plus ``LAZY_GROUPS`` loaded on first use."""

    _listing = False

    def list_commands(self, ctx: click_core.Context) -> list[str]:
        return [*self.commands, *(n for n in LAZY_GROUPS if n not in self.commands)]

    def get_command(self, ctx: click_core.Context, cmd_name: str) -> click_core.Command | None:
        if cmd_name in self.commands or cmd_name not in LAZY_GROUPS:
            return self.commands.get(cmd_name)
        lazy = LAZY_GROUPS[cmd_name]
        if self._listing:  # help and completion need the name and help line only
            stub = TyperCommand(cmd_name, help=lazy.help, short_help=lazy.help)
            stub.rich_help_panel = lazy.panel
            return stub
        group = typer.main.get_group(lazy.loader())
        group.name = cmd_name
        group.rich_help_panel = lazy.panel
        harden(group)
        self.commands[cmd_name] = group
        return group

    def format_help(self, ctx: click_core.Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: click_core.Context, args: list[str]
                        ) -> tuple[str | None, click_core.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click_exceptions.UsageError as e:
            # Typer suggests among loaded commands only; the lazy ones count too.
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches and "Did you mean" not in e.message:
                e.message = (f"{e.message.rstrip('.')}. Did you mean "
                             f"{', '.join(repr(m) for m in matches)}?")
            raise


def _version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("ouroboros")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        number = "unknown"
    typer.echo(f"ouro {number} (Python {sys.version.split()[0]})")
    raise typer.Exit(0)


app = typer.Typer(name="ouro", cls=RootGroup, no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=True,
                  help="Ouroboros: a governed runtime for self-improving agents.\n\n"
                       "Exit codes: 0 ok, 1 failure or integrity error, 2 usage error, "
                       "3 rejected by a gate, 4 waiting for approval. Every command takes "
                       "--json.")


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Ouroboros: a governed runtime for self-improving agents."""


def _mount() -> None:
    from ouroboros.interfaces.cli import demo, kernel_cmds, mcp_cmds, serve_cmds

    kernel_cmds.register(app)
    app.command("serve")(serve_cmds.serve)
    app.command("mcp")(mcp_cmds.mcp)
    output.CAPABILITY_REGISTRARS.extend([
        "ouroboros.capabilities.flux", "ouroboros.capabilities.skills",
        "ouroboros.capabilities.improve.registrar"])
    demo.CAPABILITY_DEMOS.extend([
        ("Telemetry and analysis", "ouroboros.interfaces.cli.telemetry"),
        ("FLUX: programs that evolve", "ouroboros.interfaces.cli.flux"),
        ("Skills: WASM tools with tests and lineage", "ouroboros.interfaces.cli.tool"),
        ("Skill retrieval", "ouroboros.interfaces.cli.tool_authoring"),
        ("Self-improvement: proposals, approval, monitoring",
         "ouroboros.interfaces.cli.proposals"),
    ])
    demo.register(app)


_mount()


def run(args: Sequence[str]) -> int:
    """Run ``ouro ARGS`` in this process and return the exit code (for tests and tools)."""
    command = typer.main.get_command(app)
    code: int = command.main(args=list(args), prog_name="ouro", standalone_mode=False)
    return code


def main() -> NoReturn:
    sys.exit(run(sys.argv[1:]))
