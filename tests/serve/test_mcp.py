"""MCP driven by the official client: ``ouro mcp`` over stdio and ``/mcp`` on a real
``ouro serve`` subprocess, in both protocol eras (the 2025 handshake, as Claude Desktop
speaks it, and 2026-07-28), with the attacks: no token, a weak token, a revoked token, a
stolen session id, hostile arguments and resource URIs, and the list-changed notification
when a version is added by another process."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.output import open_runtime

from .conftest import new_workspace
from .live import LiveServer, start

BUILTINS = {"list_tools", "search_tools", "describe_tool", "list_proposals", "run_tool",
            "create_tool", "mutate_tool", "solve", "propose_patch"}
READ_ONLY = {"list_tools", "search_tools", "describe_tool", "list_proposals"}
WAIT = 20.0  # seconds for a notification on a loaded 2-core machine (the poll is 0.2 s)


def starter(name: str) -> Path:
    return next(d for d in starter_dirs() if d.name == name)


def add_tool(home: Path, name: str, source: str | None = None) -> None:
    """Register a starter tool (or a copy of ``source`` under ``name``) from this process,
    as the CLI would (not through MCP)."""
    import shutil

    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    directory = starter(name if source is None else source)
    if source is not None:
        copy = home.parent / f"tool-{name}"
        shutil.copytree(directory, copy)
        meta = json.loads((copy / "meta.json").read_text())
        (copy / "meta.json").write_text(json.dumps({**meta, "name": name}))
        directory = copy
    with open_runtime(home) as rt:
        open_store(rt).add_dir(directory)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = new_workspace(tmp_path_factory.mktemp("mcp") / "ws")
    add_tool(home, "sum_ints")
    return home


@pytest.fixture(scope="module")
def live(home: Path) -> Iterator[LiveServer]:
    server = start(home, "--no-scheduler", env={"OURO_MCP_POLL": "0.2"})
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def stdio(home: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[
        "-m", "ouroboros", "mcp", "--home", str(home), "--poll", "0.2", *extra])


def over_http(live: LiveServer, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return streamable_http_client(f"{live.url}/mcp",
                                  http_client=create_mcp_http_client(headers=headers))


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def run(coro: Any) -> Any:
    return anyio.run(coro)


# -- stdio ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_stdio_lists_builtins_and_skills_and_runs_them(home: Path, mode: str) -> None:
    async def go() -> None:
        async with Client(stdio(home), mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) >= BUILTINS and "sum_ints" in tools
            schema = tools["sum_ints"].input_schema
            assert schema["type"] == "object" and schema["required"] == ["input"]
            result = await client.call_tool("sum_ints", {"input": [1, 2, 3]})
            assert not result.is_error and result.structured_content == {"output": 6}
            ran = await client.call_tool("run_tool", {"name": "sum_ints", "input": [4, 5]})
            assert json.loads(text(ran))["output"] == 9
            described = await client.call_tool("describe_tool", {"name": "sum_ints"})
            info = json.loads(text(described))
            assert info["input_schema"] == tools["sum_ints"].input_schema["properties"]["input"]
            assert "path" not in info and all(not c.get("hidden") for c in info["cases"])

    run(go)


HOSTILE_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("sum_ints", {"input": "not a list"}, "invalid_input"),     # off the schema
    ("sum_ints", {}, "invalid_input"),                         # no input
    ("sum_ints", {"input": [1], "extra": 1}, "invalid_input"),  # smuggled argument
    ("run_tool", {"name": "../../etc/passwd", "input": 1}, "invalid_arguments"),
    ("run_tool", {"name": "sum_ints/../x", "input": 1}, "invalid_arguments"),
    ("run_tool", {"name": "ѕum_ints", "input": 1}, "invalid_arguments"),  # Cyrillic s
    ("run_tool", {"name": "sum_ints\x00", "input": 1}, "invalid_arguments"),
    ("run_tool", {"name": 7, "input": 1}, "invalid_arguments"),            # wrong type
    ("run_tool", {"name": "sum_ints"}, "invalid_arguments"),               # missing input
    ("run_tool", {"name": "sum_ints", "input": 1, "version": "../../x"}, "invalid_arguments"),
    ("run_tool", {"name": "ghost", "input": 1}, "not_found"),
    ("run_tool", {"name": "sum_ints", "input": [2**60]}, "usage"),        # beyond 2^53
    ("run_tool", {"name": "sum_ints", "input": "x" * 2_000_000}, "invalid_input"),
    ("describe_tool", {"name": "sum_ints", "bogus": True}, "invalid_arguments"),
    ("search_tools", {"query": "   "}, "usage"),
    ("search_tools", {"query": "x", "k": 10**9}, "invalid_arguments"),
    ("propose_patch", {"diff": "not a diff", "title": "x"}, "invalid_arguments"),
    ("no_such_tool", {}, "not_found"),
    ("../list_tools", {}, "not_found"),
]


def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


def test_hostile_calls_are_tool_errors_and_the_server_lives_on(home: Path) -> None:
    async def go() -> None:
        async with Client(stdio(home), mode="legacy") as client:
            for name, arguments, code in HOSTILE_CALLS:
                result = await client.call_tool(name, arguments)
                assert result.is_error, (name, arguments)
                assert result.structured_content is not None
                assert result.structured_content["error"]["code"] == code, (
                    name, arguments, text(result))
                assert "Traceback" not in text(result)
            deep = await client.call_tool("run_tool", {"name": "sum_ints", "input": _deep(100)})
            assert deep.is_error and "nested" in text(deep)
            fine = await client.call_tool("sum_ints", {"input": [1, 1]})
            assert fine.structured_content == {"output": 2}  # still serving

    run(go)


def test_resources_read_state_and_log_and_refuse_tricks(home: Path) -> None:
    async def go() -> None:
        async with Client(stdio(home), mode="legacy") as client:
            uris = [r.uri for r in (await client.list_resources()).resources]
            assert "ouro://state" in uris and "ouro://log" in uris
            assert "ouro://state/skills/sum_ints" in uris
            one = await client.read_resource("ouro://state/skills/sum_ints")
            body = json.loads(one.contents[0].text)  # type: ignore[union-attr]
            assert body["target"] == "skills/sum_ints" and body["hash"].startswith("sha256:")
            log = await client.read_resource("ouro://log?limit=2")
            assert len(json.loads(log.contents[0].text)) == 2  # type: ignore[union-attr]
            for uri in ("ouro://state/../../etc/passwd", "file:///etc/passwd",
                        "ouro://state/nope", "ouro://log?limit=-1", "ouro://log?limit=1&x=2",
                        "ouro://log?kind=%3Cscript%3E", "ouro://other"):
                with pytest.raises(MCPError):
                    await client.read_resource(uri)
            templates = (await client.list_resource_templates()).resource_templates
            assert {t.uri_template for t in templates} == {
                "ouro://state/{+target}", "ouro://log{?since,limit,kind}",
                "ouro://proofs/inclusion/{seq}", "ouro://proofs/consistency{?old,new}"}

    run(go)


def test_resources_serve_checkpoints_and_proofs_a_third_party_checks(
        home: Path, tmp_path: Path) -> None:
    from ouroboros.kernel.note import Checkpoint, Verifier
    from ouroboros.kernel.proofs import parse_proof

    with open_runtime(home) as rt:  # the log's key, as its operator publishes it
        verifier = Verifier.parse(rt.verifier.vkey())

    async def go() -> None:
        async with Client(stdio(home), mode="legacy") as client:
            assert "ouro://checkpoint" in [r.uri for r in (await client.list_resources()
                                                            ).resources]

            async def read(uri: str) -> Any:
                result = await client.read_resource(uri)
                return json.loads(result.contents[0].text)  # type: ignore[union-attr]

            cp = await read("ouro://checkpoint")
            assert Checkpoint.open(cp["note"].encode(), verifier).size == cp["size"] > 1
            inclusion = parse_proof((await read("ouro://proofs/inclusion/1"))["file"].encode())
            assert inclusion.check(verifier).size == cp["size"]
            consistency = await read(f"ouro://proofs/consistency?old=1&new={cp['size']}")
            old, new = parse_proof(consistency["file"].encode()).check(verifier)  # type: ignore[misc]
            assert (old.size, new.size) == (1, cp["size"])
            for uri in ("ouro://proofs/inclusion/99999", "ouro://proofs/inclusion/-1",
                        "ouro://proofs/inclusion/%EF%BC%97", "ouro://proofs/inclusion/\uff17",
                        "ouro://proofs/inclusion/1?x=1",
                        "ouro://proofs/consistency?old=3&new=1", "ouro://proofs/consistency",
                        "ouro://proofs/consistency?old=1&old=2", "ouro://checkpoint?x=1"):
                with pytest.raises(MCPError):
                    await client.read_resource(uri)

    run(go)


def test_a_read_only_stdio_server_offers_and_runs_nothing_that_writes(home: Path) -> None:
    async def go() -> None:
        async with Client(stdio(home, "--role", "read"), mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == READ_ONLY
            for name in ("run_tool", "sum_ints", "create_tool", "propose_patch"):
                result = await client.call_tool(name, {"name": "sum_ints", "input": [1]})
                assert result.is_error and result.structured_content is not None
                assert result.structured_content["error"]["code"] == "forbidden", name

    run(go)


def test_a_missing_workspace_is_a_usage_error_before_stdio_starts(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "ouroboros", "mcp", "--home",
                           str(tmp_path / "nowhere"), "--json"], capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "workspace_missing"


@pytest.mark.parametrize("mode,tool", [("legacy", "unit_convert"), ("auto", "json_path")])
def test_a_version_added_elsewhere_fires_list_changed(home: Path, mode: str, tool: str) -> None:
    async def go() -> None:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with Client(stdio(home), mode=mode, message_handler=on_message) as client:
            assert tool not in {t.name for t in (await client.list_tools()).tools}
            if mode == "legacy":
                await anyio.to_thread.run_sync(add_tool, home, tool)
                with anyio.fail_after(WAIT):
                    await changed.wait()
            else:
                async with client.listen(tools_list_changed=True) as events:
                    await anyio.to_thread.run_sync(add_tool, home, tool)
                    with anyio.fail_after(WAIT):
                        event = await events.__anext__()
                    assert type(event).__name__ == "ToolsListChanged"
            assert tool in {t.name for t in (await client.list_tools()).tools}

    run(go)


# -- streamable HTTP -------------------------------------------------------------------------
def test_http_without_a_token_is_401_with_the_error_shape(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"Accept": "application/json, text/event-stream"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    with live.client("ouro_000000000000_" + "A" * 43) as c:
        assert c.post("/mcp", json={}).status_code == 401

    async def go() -> None:
        with pytest.raises(Exception):  # noqa: B017 - the client surfaces the 401 its own way
            async with Client(over_http(live, None), mode="legacy") as client:
                await client.list_tools()

    run(go)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_http_a_submit_token_runs_tools(live: LiveServer, mode: str) -> None:
    token = live.token("mcp-agent", "submit")

    async def go() -> None:
        async with Client(over_http(live, token), mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names >= BUILTINS and "sum_ints" in names
            result = await client.call_tool("sum_ints", {"input": [20, 22]})
            assert not result.is_error and result.structured_content == {"output": 42}
            bad = await client.call_tool("run_tool", {"name": "../x", "input": 1})
            assert bad.is_error
            state = await client.read_resource("ouro://state")
            assert "skills/sum_ints" in json.loads(state.contents[0].text)["targets"]  # type: ignore[union-attr]

    run(go)


def test_http_a_read_token_lists_but_may_not_run(live: LiveServer) -> None:
    token = live.token("mcp-reader", "read")

    async def go() -> None:
        async with Client(over_http(live, token), mode="legacy") as client:
            assert {t.name for t in (await client.list_tools()).tools} == READ_ONLY
            found = await client.call_tool("search_tools", {"query": "add up integers"})
            assert json.loads(text(found))["results"][0]["tool_id"] == "sum_ints"
            for name in ("run_tool", "sum_ints", "solve"):
                result = await client.call_tool(name, {"name": "sum_ints", "input": [1],
                                                       "task": "x"})
                assert result.is_error
                assert result.structured_content["error"]["code"] == "forbidden"  # type: ignore[index]

    run(go)


def _initialize(c: httpx.Client) -> str:
    r = c.post("/mcp", headers={"Accept": "application/json, text/event-stream"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}})
    assert r.status_code == 200, r.text
    return r.headers["mcp-session-id"]


def test_http_a_session_answers_only_the_token_that_opened_it(live: LiveServer) -> None:
    owner, other = live.token("mcp-owner", "submit"), live.token("mcp-thief", "submit")
    with live.client(owner) as c:
        session = _initialize(c)
    with live.client(other) as c:
        r = c.post("/mcp", headers={"Accept": "application/json, text/event-stream",
                                    "mcp-session-id": session},
                   json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert r.status_code == 404  # as if the session did not exist


def test_http_one_token_cannot_take_every_session(home: Path) -> None:
    """The SDK caps open sessions for the whole server (10,000, 30 min idle); one read
    token opening sessions in a loop filled them, and every other token's `initialize`
    was a 503 until they idled out. Each token now has its own share: past it, 429 with
    the error shape; the token's open sessions still answer, an ended one frees a place,
    and other tokens are unaffected."""
    server = start(home, "--no-scheduler", env={"OURO_MCP_SESSIONS_PER_TOKEN": "3"})
    try:
        with server.client(server.token("mcp-hog", "read")) as hog:
            sessions = [_initialize(hog) for _ in range(3)]
            r = hog.post("/mcp", headers={"Accept": "application/json, text/event-stream"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                             "protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "raw", "version": "0"}}})
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "too_many_sessions"
            assert "3 open MCP sessions" in r.json()["error"]["message"]
            assert "mcp-session-id" not in r.headers
            headers = {"Accept": "application/json, text/event-stream",
                       "mcp-session-id": sessions[0]}
            listed = hog.post("/mcp", headers=headers,
                              json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert listed.status_code == 200 and "result" in listed.json()
            assert hog.delete("/mcp", headers=headers).status_code == 200
            _initialize(hog)  # the ended session's place
        with server.client(server.token("mcp-other", "read")) as other:
            _initialize(other)
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def test_http_a_call_is_answered_with_one_json_body(live: LiveServer) -> None:
    """JSON response mode: a POST's answer is the JSON-RPC response itself (no SSE stream),
    so a plain HTTP client that accepts only JSON can drive the server."""
    token = live.token("mcp-agent", "submit")
    with live.client(token) as c:
        session = _initialize(c)
        headers = {"Accept": "application/json", "mcp-session-id": session,
                   "mcp-protocol-version": "2025-11-25"}
        c.post("/mcp", headers=headers,
               json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        r = c.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "sum_ints", "arguments": {"input": [40, 2]}}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["id"] == 7 and r.json()["result"]["structuredContent"] == {"output": 42}


def test_http_a_revoked_token_is_refused_from_its_next_request(live: LiveServer) -> None:
    from ouroboros.interfaces.http.tokens import TokenStore

    token = live.token("mcp-revoked", "submit")
    with live.client(token) as c:
        _initialize(c)
        TokenStore(live.home).revoke("mcp-revoked")
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert r.status_code == 401


@pytest.mark.parametrize("body,status", [
    (b"{" * 200 + b"}" * 200, 400),             # deeper than the app's JSON cap
    (b"x" * (2 << 20), 413),                    # over the body cap
    (b"not json", 400),
])
def test_http_hostile_bodies_are_refused_before_mcp(live: LiveServer, body: bytes,
                                                    status: int) -> None:
    token = live.token("mcp-agent", "submit")
    with live.client(token) as c:
        r = c.post("/mcp", content=body, headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        assert r.status_code in (status, 400, 406, 413), r.text
        assert r.status_code < 500
    with live.client(token) as c:
        assert c.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("mode,tool,source", [("legacy", "word_stats", None),
                                              ("auto", "sum_again", "sum_ints")])
def test_http_a_version_added_elsewhere_fires_list_changed(
        live: LiveServer, mode: str, tool: str, source: str | None) -> None:
    token = live.token("mcp-agent", "submit")

    async def go() -> None:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with Client(over_http(live, token), mode=mode,
                          message_handler=on_message) as client:
            assert tool not in {t.name for t in (await client.list_tools()).tools}
            if mode == "legacy":
                await anyio.to_thread.run_sync(add_tool, live.home, tool, source)
                with anyio.fail_after(WAIT):
                    await changed.wait()
            else:
                async with client.listen(tools_list_changed=True) as events:
                    await anyio.to_thread.run_sync(add_tool, live.home, tool, source)
                    with anyio.fail_after(WAIT):
                        event = await events.__anext__()
                    assert type(event).__name__ == "ToolsListChanged"
            assert tool in {t.name for t in (await client.list_tools()).tools}

    run(go)



def test_create_tool_through_the_llm_registers_a_tool_and_tells_the_client(
        tmp_path: Path) -> None:
    from llm.hostile import HostileLLM
    from llm.tools import ADD_TASK, WRITER, adder

    home = new_workspace(tmp_path / "ws")
    llm = HostileLLM()
    llm.replies += [WRITER, adder()]
    env = {"OURO_LLM_BASE_URL": llm.base_url, "OURO_LLM_MODEL": "hostile-model",
           "OURO_LLM_API_KEY": "sk-test", "OURO_LLM_TIMEOUT": "5", "OURO_LLM_BACKOFF": "0.001"}
    params = StdioServerParameters(command=sys.executable, env={**__import__("os").environ,
                                                                 **env},
                                   args=["-m", "ouroboros", "mcp", "--home", str(home)])

    async def go() -> None:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with Client(params, mode="legacy", message_handler=on_message) as client:
            made = await client.call_tool("create_tool", {"description": ADD_TASK,
                                                          "name": "add"})
            assert not made.is_error, text(made)
            assert json.loads(text(made))["status"] == "proven"
            with anyio.fail_after(WAIT):
                await changed.wait()  # checked at once after a call that may add a version
            added = await client.call_tool("add", {"a": 2, "b": 40})
            assert added.structured_content == {"output": 42}, text(added)
            none_left = await client.call_tool("mutate_tool", {"name": "ghost",
                                                               "description": "faster"})
            assert none_left.structured_content["error"]["code"] == "not_found"  # type: ignore[index]

    try:
        run(go)
    finally:
        llm.close()


def test_a_call_after_the_served_set_changed_needs_one_runtime_not_two(tmp_path: Path) -> None:
    """The lookup, the rebuild of the served set and the run share the call's runtime: a
    second one taken from the pool while holding the first would wait forever once
    concurrent calls held every runtime (here the pool has one)."""
    from ouroboros.interfaces.http.services import Services
    from ouroboros.interfaces.mcp.server import McpServer

    home = new_workspace(tmp_path / "ws")
    add_tool(home, "sum_ints")
    services = Services(home, pool_size=1, lease_timeout=2.0)
    try:
        server = McpServer(services, lambda _: None)  # type: ignore[arg-type,return-value]
        assert server._run_served("sum_ints", {"input": [1, 2]})[0] == 3
        add_tool(home, "word_stats")  # another process adds a version: the set changes
        assert server._run_served("sum_ints", {"input": [4, 5]})[0] == 9
        assert "word_stats" in server.skills.cached()
    finally:
        services.close()


# -- request spans -------------------------------------------------------------------------
class _Collector:
    """A loopback OTLP/HTTP collector: keeps every POSTed trace export, answers 200."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies = self.bodies = []  # type: list[bytes]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            out += [s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]
        return out


def test_request_spans_are_made_only_when_spans_leave_the_process(tmp_path: Path) -> None:
    """With `[telemetry] otlp_endpoint`, the collector gets the runtime's tool-run spans and
    the request spans around them (FastAPI's HTTP span, the MCP SDK's message span), in one
    trace; without it no request span is made (the workspace's store keeps only `ouro.*`),
    and the store gets the tool runs either way."""
    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.interfaces.http.services import Services
    from ouroboros.interfaces.mcp.server import McpServer

    collector = _Collector()
    exported = new_workspace(tmp_path / "exported")
    add_tool(exported, "sum_ints")
    (exported / "ouro.toml").write_text(f'[telemetry]\notlp_endpoint = "{collector.url}"\n')
    server = start(exported, "--no-scheduler")
    try:
        token = server.token("agent", "submit")
        r = httpx.post(f"{server.url}/api/v1/tools/sum_ints/run", json={"input": [1, 2]},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200 and r.json()["output"] == 3

        async def call() -> None:
            async with Client(over_http(server, token)) as client:
                result = await client.call_tool("sum_ints", {"input": [3, 4]})
                assert result.structured_content == {"output": 7}

        run(call)
    finally:
        code, err = server.stop()  # a graceful stop flushes the exporter's batch
    assert code == 0, err
    spans = collector.spans()
    names = [s.name for s in spans]
    assert names.count("ouro.tool.run") == 2, names
    mcp = [s for s in spans if s.name == "tools/call sum_ints"]
    http = [s for s in spans if "/api/v1/tools" in s.name]
    assert len(mcp) == 1 and len(http) == 1, names
    runs = [s for s in spans if s.name == "ouro.tool.run"]
    assert {s.trace_id for s in runs} == {mcp[0].trace_id, http[0].trace_id}  # nested
    stored = [e for e in TelemetryStore(exported).events() if e["tool"] == "sum_ints"]
    assert len(stored) == 2  # the store keeps the runtime's spans only, as without export

    quiet = new_workspace(tmp_path / "quiet")
    services = Services(quiet, pool_size=1)
    try:
        assert services.export_spans() is False
        middleware = McpServer(services, lambda _: None,  # type: ignore[arg-type,return-value]
                               ).server.middleware
        assert not any(type(m).__name__ == "OpenTelemetryMiddleware" for m in middleware)
        with_spans = McpServer(services, lambda _: None,  # type: ignore[arg-type,return-value]
                               request_spans=True).server.middleware
        assert any(type(m).__name__ == "OpenTelemetryMiddleware" for m in with_spans)
    finally:
        services.close()
    from ouroboros.interfaces.http.app import create_app

    assert create_app(quiet).state.request_spans is False
