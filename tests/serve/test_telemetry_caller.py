"""Telemetry of work a token asked for is that token's, not the runtime's.

The monitor and the analysis trust the runtime's own spans (``source`` ``local``) and cap
every other source. A server runs tools *for* its tokens: if those runs were stamped
``local``, one submit token could run the tool a merge changed with its fuel lowered, 50
times, and the trusted failures would revert a good change. Every path a token can run a
tool by (REST, MCP over HTTP, the console) is driven here against a real ``ouro serve``;
the CLI's own run stays ``local``.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
from mcp import Client

from console.conftest import csrf_of, logged_in
from ouroboros.capabilities.improve.intake.events import source_of
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.skills.starter import starter_dirs

from .conftest import new_workspace
from .live import start
from .test_mcp import over_http

SUM_INTS = next(d for d in starter_dirs() if d.name == "sum_ints")


def _ouro(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=300)


def test_runs_a_token_asks_for_are_that_tokens_telemetry_not_the_runtimes(
        tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    assert _ouro(home, "tool", "add", str(SUM_INTS)).returncode == 0
    server = start(home, "--no-scheduler")
    try:
        rest = server.token("agent-rest", "submit")
        with server.client(rest) as c:
            assert c.post("/api/v1/tools/sum_ints/run", json={"input": [1, 2]}).status_code == 200
            failed = c.post("/api/v1/tools/sum_ints/run", json={"input": list(range(1000)),
                                                                 "fuel": 1})
            assert failed.status_code == 422, failed.text  # a failure the token provoked

        async def call() -> None:
            async with Client(over_http(server, server.token("agent-mcp", "submit"))) as client:
                result = await client.call_tool("sum_ints", {"input": [3, 4]})
                assert result.structured_content == {"output": 7}

        anyio.run(call)
        with logged_in(server, server.token("person", "submit")) as console:
            csrf = csrf_of(console.get("/").text)
            r = console.post("/tools/sum_ints/run", data={"csrf": csrf, "input": "[40, 2]"},
                             headers={"HX-Request": "true"})
            assert r.status_code == 200 and "42" in r.text
    finally:
        code, err = server.stop()  # a graceful stop flushes the span batch
    assert code == 0 and "Traceback" not in err, err
    assert _ouro(home, "tool", "run", "sum_ints", "--input", "[5, 6]").returncode == 0

    runs = [e for e in TelemetryStore(home).events() if e.get("tool") == "sum_ints"]
    by_source = collections.Counter((source_of(e), bool(e["success"])) for e in runs)
    assert by_source == {("agent-rest", True): 1, ("agent-rest", False): 1,
                         ("agent-mcp", True): 1, ("person", True): 1, ("local", True): 1}, runs


def test_a_caller_name_does_not_outlive_its_request(tmp_path: Path) -> None:
    """Callers live in the request's context: a run on a kept-alive connection after a
    token's request, or another token's request on the same connection, is not stamped
    with the earlier token's name (uvicorn runs each request in its own task)."""
    home = new_workspace(tmp_path / "ws")
    assert _ouro(home, "tool", "add", str(SUM_INTS)).returncode == 0
    server = start(home, "--no-scheduler")
    try:
        tokens = {name: server.token(name, "submit") for name in ("one", "two")}
        with httpx.Client(base_url=server.url, timeout=60) as c:  # one connection
            for name in ("one", "two", "one", "two"):
                r = c.post("/api/v1/tools/sum_ints/run", json={"input": [1]},
                           headers={"Authorization": f"Bearer {tokens[name]}"})
                assert r.status_code == 200, r.text
    finally:
        code, err = server.stop()
    assert code == 0, err
    runs = [e for e in TelemetryStore(home).events() if e.get("tool") == "sum_ints"]
    assert collections.Counter(source_of(e) for e in runs) == {"one": 2, "two": 2}
