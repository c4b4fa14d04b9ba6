"""The ``ouro`` command: kernel verbs plus each capability's commands."""

from __future__ import annotations

import sys

import typer

from ouroboros.interfaces.cli import kernel_cmds
from ouroboros.interfaces.cli.output import err_console
from ouroboros.kernel import OuroError

app = typer.Typer(name="ouro", help="Ouroboros: a governed runtime for self-improving agents.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
kernel_cmds.register(app)


def _mount_capabilities() -> None:
    from ouroboros.interfaces.cli import (
        config,
        demo,
        flux,
        improve,
        output,
        proposals,
        telemetry,
        tool,
        tool_authoring,
    )

    app.add_typer(telemetry.app, name="telemetry")
    demo.CAPABILITY_DEMOS.append(("Telemetry and analysis", "ouroboros.interfaces.cli.telemetry"))
    output.CAPABILITY_REGISTRARS.append("ouroboros.capabilities.flux")
    app.add_typer(flux.app, name="flux")
    demo.CAPABILITY_DEMOS.append(("FLUX: programs that evolve", "ouroboros.interfaces.cli.flux"))
    output.CAPABILITY_REGISTRARS.append("ouroboros.capabilities.skills")
    tool_authoring.register(tool.app)
    app.add_typer(tool.app, name="tool")
    demo.CAPABILITY_DEMOS.append(("Skills: WASM tools with tests and lineage",
                                  "ouroboros.interfaces.cli.tool"))
    demo.CAPABILITY_DEMOS.append(("Skill retrieval", "ouroboros.interfaces.cli.tool_authoring"))
    output.CAPABILITY_REGISTRARS.append("ouroboros.capabilities.improve.registrar")
    app.add_typer(proposals.app, name="proposals")
    app.add_typer(improve.app, name="improve")
    app.add_typer(config.app, name="config")
    demo.CAPABILITY_DEMOS.append(("Self-improvement: proposals, approval, monitoring",
                                  "ouroboros.interfaces.cli.proposals"))
    demo.register(app)


_mount_capabilities()


def main() -> None:
    try:
        app()
    except OuroError as e:
        err_console.print(f"[red]error:[/red] {e.message}", highlight=False)
        if e.hint:
            err_console.print(f"  hint: {e.hint}", highlight=False)
        sys.exit(e.exit_code)
