"""MCP JSON-RPC messages (interfaces/mcp/): one line of stdin as ``ouro mcp`` reads it,
then the dispatch of ``tools/call`` (the read-only built-ins, ``search_tools`` among them
over four starter tools; every other tool is refused for a read token) and
``resources/read``, called directly on a workspace, no network.

Invariant: a line is a message or a parse/validation error; ``check_parsed``, the
argument models and the built-ins raise only errors that ``describe`` knows (never the
"internal" answer an unexpected exception gets); a resource URI is read or refused with
an ``OuroError``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from _harness import fuzz, instrumented

with instrumented(__name__):
    import mcp_types as types
    from pydantic import ValidationError

    # imported by search_tools on first use: imported here so the fuzzer sees their coverage
    import ouroboros.capabilities.skills.discovery
    import ouroboros.capabilities.skills.serving  # noqa: F401
    from ouroboros.interfaces.http.services import Services
    from ouroboros.interfaces.http.tokens import Role
    from ouroboros.interfaces.json_input import check_parsed
    from ouroboros.interfaces.mcp import catalogue
    from ouroboros.interfaces.mcp.errors import describe
    from ouroboros.kernel.errors import OuroError
    from ouroboros.kernel.runtime import Runtime

_STATE: Services | None = None
#: Built-ins that run for a read token; the rest would build, call a model or use git.
READ_ONLY = {name for name, b in catalogue.BUILTINS.items() if b.needs is Role.read}
#: Starter tools that build in well under a second each (the C one and the CPython ones
#: take minutes), so ``search_tools`` ranks real documents.
TOOLS = ("sum_ints", "json_path", "unit_convert", "word_stats")


def _services() -> Services:
    global _STATE
    if _STATE is None:
        from ouroboros.capabilities.skills.starter import starter_dirs
        from ouroboros.interfaces.cli.tool_authoring import store_for

        home = Path(tempfile.mkdtemp(prefix="ouro-fuzz-mcp-")) / "ws"
        with Runtime.init(home) as rt:
            rt.propose_and_submit(type="routing", target="agents/a/routing",
                                  value={"model": "m"}, reasoning="r")
            store = store_for(rt)
            for d in starter_dirs():
                if d.name in TOOLS:
                    store.add_dir(d)
        _STATE = Services(home, pool_size=1)
    return _STATE


def _line(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()


def seeds() -> list[bytes]:
    return [_line("tools/call", {"name": "list_tools", "arguments": {}}),
            _line("tools/call", {"name": "describe_tool", "arguments": {"name": "sum_ints"}}),
            _line("tools/call", {"name": "list_proposals", "arguments": {"all": True}}),
            _line("tools/call", {"name": "search_tools", "arguments": {"query": "add up "
                                 "integers", "k": 2}}),
            _line("tools/call", {"name": "search_tools", "arguments": {
                "query": "convert 70 fahrenheit to celsius", "k": 50, "all": True}}),
            _line("tools/call", {"name": "search_tools", "arguments": {"query": "$.a[0]"}}),
            _line("tools/call", {"name": "run_tool", "arguments": {"name": "x", "input": 1}}),
            _line("resources/read", {"uri": "ouro://state/agents/a/routing"}),
            _line("resources/read", {"uri": "ouro://log?since=0&limit=2&kind=PatchApplied"}),
            _line("resources/read", {"uri": "ouro://proofs/consistency?old=1&new=2"}),
            _line("resources/read", {"uri": "ouro://proofs/inclusion/1"}),
            _line("resources/read", {"uri": "ouro://checkpoint"}),
            b'{"jsonrpc": "2.0", "method": "notifications/initialized"}']


def _call(params: dict[str, Any]) -> None:
    call = types.CallToolRequestParams.model_validate(params)
    try:
        arguments = check_parsed(call.arguments or {}, "the arguments")
        builtin = catalogue.BUILTINS.get(call.name)
        if builtin is None or call.name not in READ_ONLY:
            return  # a skill, or a tool a read token may not call (MCP refuses it first)
        builtin.run(_services(), builtin.args.model_validate(arguments), "fuzz")
    except Exception as e:
        assert describe(e).code != "internal", repr(e)


def test_one(data: bytes) -> None:
    try:
        message = types.jsonrpc_message_adapter.validate_json(data, by_name=False)
    except ValidationError:
        return  # `ouro mcp` answers -32700 / -32600 (tests/serve/test_mcp.py)
    if not isinstance(message, types.JSONRPCRequest) or not isinstance(message.params, dict):
        return
    try:
        if message.method == "tools/call":
            _call(message.params)
        elif message.method == "resources/read":
            uri = types.ReadResourceRequestParams.model_validate(message.params).uri
            with contextlib.suppress(OuroError):
                catalogue.read_resource(_services(), uri)
    except ValidationError:
        return  # the SDK answers -32602


if __name__ == "__main__":
    fuzz(test_one)
