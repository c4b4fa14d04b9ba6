"""``ouro mcp``: the MCP server on stdio (mounted by main.py; the SDK loads only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from ouroboros.interfaces.cli.output import HomeOption, JsonOption


def mcp(
    home: Path | None = HomeOption,
    role: Literal["read", "submit"] = typer.Option(
        "submit", "--role", help="read (list, search, describe) or submit (also run, create, "
                                 "mutate, solve, propose)."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, max=3600.0, metavar="SECONDS",
                               help="How often to look for new tool versions."),
    max_line: int = typer.Option(8 << 20, "--max-line", min=1024, metavar="BYTES",
                                 help="Longest message (a line of stdin); a longer one is "
                                      "refused with a JSON-RPC error, never held."),
    as_json: bool = JsonOption,
) -> None:
    """Serve MCP on stdin/stdout for an MCP host (Claude Desktop, any MCP client)."""
    from ouroboros.interfaces.http.tokens import Role
    from ouroboros.interfaces.mcp.stdio import serve_stdio

    serve_stdio(home, Role(role), poll=poll, max_line=max_line)
