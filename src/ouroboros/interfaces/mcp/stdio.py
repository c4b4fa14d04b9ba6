"""``ouro mcp``: the MCP server on stdin/stdout, for a host that starts it (Claude Desktop,
an IDE, any MCP client).

The process belongs to the person whose host started it, so there is no token: the caller
is the local operator with the role given (``submit`` by default, ``read`` for a host that
should only look). Everything else is the HTTP server's code path: the same catalogue, the
same leases.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal, Role

#: Runtimes kept open: a host sends a few calls at a time.
POOL = 2


def serve_stdio(home: Path | str | None, role: Role = Role.submit, *, poll: float = 1.0) -> None:
    """Serve MCP on this process's stdin and stdout until the host closes stdin.

    Raises:
        WorkspaceMissing: no workspace at ``home`` (before anything is read from stdin).
    """
    from mcp.server.stdio import stdio_server

    from ouroboros.interfaces.mcp.server import McpServer

    services = Services(home, pool_size=POOL)
    caller = Principal(name="local", role=role, key=None, token_id="stdio")
    try:
        mcp = McpServer(services, lambda _: caller, poll=poll,
                        request_spans=services.export_spans())
    except BaseException:
        services.close()
        raise

    async def main() -> None:
        async with stdio_server() as (read, write):
            await mcp.server.run(read, write, mcp.initialization_options())

    try:
        anyio.run(main)
    finally:
        services.close()
