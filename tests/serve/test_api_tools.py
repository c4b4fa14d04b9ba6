"""Skills over real HTTP: list, search, describe, run, and create / mutate / solve against
a scripted OpenAI-compatible server (the project's hostile-model server), with the attacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm.hostile import HostileLLM, Raw
from llm.tools import ADD_TASK, WRITER, adder
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.output import open_runtime
from ouroboros.kernel import Runtime

from .conftest import new_workspace
from .live import LiveServer, start


def with_sum_ints(home: Path) -> Path:
    new_workspace(home)
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    with open_runtime(home) as rt:
        open_store(rt).add_dir(next(d for d in starter_dirs() if d.name == "sum_ints"))
    return home


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileLLM]:
    server = HostileLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, hostile: HostileLLM) -> Iterator[LiveServer]:
    home = with_sum_ints(tmp_path_factory.mktemp("tools") / "ws")
    env = {"OURO_LLM_BASE_URL": hostile.base_url, "OURO_LLM_MODEL": "hostile-model",
           "OURO_LLM_API_KEY": "sk-test", "OURO_LLM_TIMEOUT": "5", "OURO_LLM_BACKOFF": "0.001"}
    server = start(home, "--no-scheduler", env=env)
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


@pytest.fixture
def agent(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(live.token("agent", "submit")) as c:
        yield c


def test_list_and_describe_give_the_clis_shape_without_server_paths(
        agent: httpx.Client) -> None:
    tools = agent.get("/api/v1/tools").json()
    assert [t["tool_id"] for t in tools] == ["sum_ints"]
    assert tools[0]["status"] == "operator" and "path" not in tools[0]
    info = agent.get("/api/v1/tools/sum_ints").json()
    assert info["lineage"] == [f"sum_ints@{info['fingerprint']}"]
    assert info["cases"] and all(not c.get("hidden") for c in info["cases"])
    assert agent.get("/api/v1/tools/nope").status_code == 404


def test_run_returns_output_and_ms(agent: httpx.Client) -> None:
    r = agent.post("/api/v1/tools/sum_ints/run", json={"input": [1, 2, 3]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["output"] == 6 and out["ms"] > 0 and out["tool_id"] == "sum_ints"


def test_a_failing_tool_and_a_limit_are_422_and_the_server_lives_on(
        agent: httpx.Client) -> None:
    r = agent.post("/api/v1/tools/sum_ints/run", json={"input": {"not": "a list"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "tool_failed"
    r = agent.post("/api/v1/tools/sum_ints/run", json={"input": list(range(1000)), "fuel": 1})
    assert r.status_code == 422 and r.json()["error"]["code"] == "fuel_exhausted"
    assert agent.post("/api/v1/tools/sum_ints/run", json={"input": [2]}).json()["output"] == 2


@pytest.mark.parametrize("raw,problem", [
    (b'{"input": ["\\ud800"]}', "contains a lone surrogate"),
    (b'{"input": {"\\udfff": 1}}', "contains a lone surrogate"),
    (b'{"input": [NaN]}', "holds nan, which is not a JSON number"),
    (b'{"input": [123456789012345678901234567890]}', "outside ±2^53-1"),
])
def test_an_input_json_cannot_hold_is_400_as_in_the_cli_and_mcp(
        agent: httpx.Client, raw: bytes, problem: str) -> None:
    """The CLI, the console and MCP parse a run's input strictly; the API took anything
    Python's json reads: a lone surrogate crashed the schema check (a 500), NaN became
    null, a huge integer wrapped around in the tool. Refused before the tool runs."""
    uses = agent.get("/api/v1/tools/sum_ints").json()["metrics"]["uses"]
    r = agent.post("/api/v1/tools/sum_ints/run", content=raw,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert r.json()["error"]["message"].startswith("the input ")
    assert problem in r.json()["error"]["message"]
    assert agent.get("/api/v1/tools/sum_ints").json()["metrics"]["uses"] == uses
    assert agent.post("/api/v1/tools/sum_ints/run", json={"input": [2]}).json()["output"] == 2


@pytest.mark.parametrize("path,body,status", [
    ("/api/v1/tools/..%2F..%2Fetc/run", {"input": 1}, (404, 422)),
    ("/api/v1/tools/Sum_Ints/run", {"input": 1}, (422,)),
    ("/api/v1/tools/sum_ints%00/run", {"input": 1}, (404, 422)),
    ("/api/v1/tools/ghost/run", {"input": 1}, (404,)),
    ("/api/v1/tools/sum_ints/run", {}, (422,)),
    ("/api/v1/tools/sum_ints/run", {"input": 1, "version": "../../x"}, (422,)),
    ("/api/v1/tools/sum_ints/run", {"input": 1, "fuel": -5}, (422,)),
    ("/api/v1/tools/sum_ints/run", {"input": 1, "deadline": 0}, (422,)),
    ("/api/v1/tools/sum_ints/run", {"input": 1, "version": "0" * 64}, (404,)),
])
def test_bad_tool_requests_are_4xx(agent: httpx.Client, path: str, body: dict[str, Any],
                                   status: tuple[int, ...]) -> None:
    r = agent.post(path, json=body)
    assert r.status_code in status, (path, r.status_code, r.text)
    assert "error" in r.json()


def test_search_finds_by_meaning_and_validates_its_query(agent: httpx.Client) -> None:
    r = agent.get("/api/v1/tools/search", params={"q": "add up a list of whole numbers"})
    assert r.status_code == 200
    assert r.json()["results"][0]["tool_id"] == "sum_ints"
    assert r.json()["semantic_model"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    for params in ({"q": ""}, {"q": "x", "k": 0}, {"q": "x", "mode": "magic"}, {},
                   {"q": "x" * 1001}):
        assert agent.get("/api/v1/tools/search", params=params).status_code == 422
    blank = agent.get("/api/v1/tools/search", params={"q": " \u0085\x1c "})
    assert blank.status_code == 200 and blank.json()["results"] == []


def test_create_through_the_llm_registers_a_served_tool(
        agent: httpx.Client, hostile: HostileLLM) -> None:
    hostile.replies += [WRITER, adder()]
    r = agent.post("/api/v1/tools", json={"description": ADD_TASK, "name": "add"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["id"] == "add" and out["status"] == "proven"
    assert agent.post("/api/v1/tools/add/run", json={"input": {"a": 2, "b": 40}}).json()[
        "output"] == 42
    assert "add" in [t["tool_id"] for t in agent.get("/api/v1/tools").json()]


def test_a_hostile_answer_is_502_and_registers_nothing(agent: httpx.Client,
                                                       hostile: HostileLLM) -> None:
    hostile.replies += [Raw(b"this is not json")] * 4
    r = agent.post("/api/v1/tools", json={"description": "count words", "name": "wc_bad"})
    assert r.status_code in (422, 502), r.text
    assert "error" in r.json()
    assert agent.get("/api/v1/tools/wc_bad").status_code == 404
    hostile.replies.clear()


def test_mutate_an_unknown_tool_is_404(agent: httpx.Client) -> None:
    r = agent.post("/api/v1/tools/ghost/mutate", json={"description": "faster"})
    assert r.status_code == 404


def test_solve_runs_a_tool_and_answers(agent: httpx.Client, hostile: HostileLLM) -> None:
    hostile.replies += [[("run_binary", {"binary_id": "sum_ints", "input_json": [1, 2, 3]})],
                        "The sum is 6."]
    r = agent.post("/api/v1/solve", json={"task": "add up 1, 2 and 3", "steps": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["answer"] == "The sum is 6." and out["outcome"] == "reused" and out["solved"]
    for bad in ({}, {"task": ""}, {"task": "x", "steps": 0}, {"task": "x", "timeout": 10**9}):
        assert agent.post("/api/v1/solve", json=bad).status_code == 422


def test_without_an_llm_create_mutate_and_solve_are_503(tmp_path: Path) -> None:
    home = with_sum_ints(tmp_path / "ws")
    env = {"OURO_LLM_BASE_URL": "", "OURO_LLM_MODEL": "", "OPENAI_BASE_URL": "",
           "OPENAI_MODEL": ""}
    server = start(home, "--no-scheduler", env=env)
    try:
        with server.client(server.token("a", "submit")) as c:
            for path, body in (("/api/v1/tools", {"description": "x"}),
                               ("/api/v1/tools/sum_ints/mutate", {"description": "x"}),
                               ("/api/v1/solve", {"task": "x"})):
                r = c.post(path, json=body)
                assert r.status_code == 503 and r.json()["error"]["code"] == "llm_not_configured"
        with Runtime.open(home) as rt:
            assert [e.kind for e in rt.log()][-1] != "PatchRejected"
    finally:
        assert server.stop()[0] == 0
