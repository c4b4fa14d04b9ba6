"""``ouro mcp``: the MCP server on stdin/stdout, for a host that starts it (Claude Desktop,
an IDE, any MCP client).

The process belongs to the person whose host started it, so there is no token: the caller
is the local operator with the role given (``submit`` by default, ``read`` for a host that
should only look). Everything else is the HTTP server's code path: the same catalogue, the
same leases.

The SDK reads stdin a line at a time with no bound and drops, without a word, a line
that is not a JSON-RPC message. Here stdin is read in chunks instead (`_Lines`): a line
over ``max_line`` bytes is skipped as it streams by, never held, and answered ``-32600``;
a line that is not UTF-8 JSON is answered ``-32700``, JSON that is not a message
``-32600`` (``"id": null`` unless it has a string or integer id); each refusal is also a
line on stderr. Good lines go on to the SDK as before.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal, Role

#: Runtimes kept open: a host sends a few calls at a time.
POOL = 2
#: The longest line (one JSON-RPC message) read from stdin, in bytes.
MAX_LINE = 8 << 20

_TOO_LONG = object()


class _Lines:
    """stdin's lines for the SDK's reader; whatever is not a message is answered here."""

    def __init__(self, fd: int, max_line: int, refusals: MemoryObjectSendStream[Any]) -> None:
        self.fd = fd
        self.max_line = max_line
        self.refusals = refusals
        self.buf = bytearray()
        self.skipping = False
        self.lines: collections.deque[object] = collections.deque()
        self.number = 0

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        import mcp_types as types
        from pydantic import ValidationError

        while True:
            line = await self._next()
            if line is None:
                self.refusals.close()
                raise StopAsyncIteration
            self.number += 1
            if line is _TOO_LONG:
                await self._refuse(-32600, f"Invalid Request: the message is over "
                                   f"{self.max_line} bytes (a line of stdin); none of it was "
                                   "read")
                continue
            assert isinstance(line, bytes)
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
                types.jsonrpc_message_adapter.validate_json(text, by_name=False)
                return text
            except UnicodeDecodeError:
                await self._refuse(-32700, "Parse error: the line is not UTF-8")
                continue
            except ValidationError:
                pass
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                await self._refuse(-32700, "Parse error: the line is not JSON")
                continue
            ident = data.get("id") if isinstance(data, dict) else None
            if isinstance(ident, bool) or not isinstance(ident, (str, int)):
                ident = None
            await self._refuse(-32600, "Invalid Request: not a JSON-RPC 2.0 request, "
                               "notification or response", ident)

    async def _refuse(self, code: int, message: str, ident: str | int | None = None) -> None:
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        sys.stderr.write(f"ouro mcp: refused line {self.number} of stdin ({code}): "
                         f"{message}\n")
        sys.stderr.flush()
        error = types.JSONRPCError(jsonrpc="2.0", id=ident,
                                   error=types.ErrorData(code=code, message=message))
        await self.refusals.send(SessionMessage(error))

    async def _next(self) -> object:
        """The next line (bytes, without its newline), `_TOO_LONG`, or None at the end."""
        while not self.lines:
            chunk = await anyio.to_thread.run_sync(os.read, self.fd, 1 << 16,
                                                   abandon_on_cancel=True)
            if not chunk:
                if self.skipping or self.buf:
                    self.lines.append(_TOO_LONG if self.skipping else bytes(self.buf))
                    self.buf.clear()
                    self.skipping = False
                    break
                return None
            parts = chunk.split(b"\n")
            for i, part in enumerate(parts):
                if not self.skipping:
                    if len(self.buf) + len(part) > self.max_line:
                        self.buf.clear()
                        self.skipping = True
                    else:
                        self.buf += part
                if i < len(parts) - 1:  # a newline ends this part
                    self.lines.append(_TOO_LONG if self.skipping else bytes(self.buf))
                    self.buf.clear()
                    self.skipping = False
        return self.lines.popleft()


def serve_stdio(home: Path | str | None, role: Role = Role.submit, *, poll: float = 1.0,
                max_line: int = MAX_LINE) -> None:
    """Serve MCP on this process's stdin and stdout until the host closes stdin.

    A line of stdin over ``max_line`` bytes is refused (-32600) without being held.

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

    async def main(wire: int) -> None:
        send, refusals = anyio.create_memory_object_stream[Any](16)
        lines = _Lines(wire, max_line, send)
        async with stdio_server(stdin=cast(Any, lines)) as (read, write):

            async def forward() -> None:
                with refusals:
                    async for message in refusals:
                        try:
                            await write.send(message)
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            return

            async with anyio.create_task_group() as tg:
                tg.start_soon(forward)
                await mcp.server.run(read, write, mcp.initialization_options())
                tg.cancel_scope.deadline = anyio.current_time() + 1.0  # the last refusals

    wire = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # as the SDK does for a stdin it reads itself: a tool's child process
    os.close(null)    # reads nothing, the wire is ours
    try:
        anyio.run(main, wire)
    finally:
        os.dup2(wire, 0)
        services.close()
