from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from openai_stub import ChatStub
from test_authoring_llm import WRITER, answer, csv_parent

from llm.scripts import writer_answer
from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.authoring import ToolAuthor
from ouroboros.capabilities.skills.control import TOOL_SCHEMAS, Solver, SolveStats, stats_path
from ouroboros.capabilities.skills.discovery import index_version, open_index, sync_index
from ouroboros.capabilities.skills.embedding import E5Embedder
from ouroboros.capabilities.skills.llm import OpenAICompatibleProvider


@pytest.fixture
def solver(tmp_path: Path, provider: OpenAICompatibleProvider, embedder: E5Embedder) -> Solver:
    store = SkillStore(tmp_path / "store")
    csv_parent(store)
    index = open_index(store, embedder)
    sync_index(store, index)
    author = ToolAuthor(store, provider, on_accepted=lambda v: index_version(store, index, v))
    return Solver(store, index, provider, author)


def tool_messages(stub: ChatStub, i: int) -> list[dict[str, object]]:
    return [m for m in stub.requests[i]["body"]["messages"] if m["role"] == "tool"]


def test_schemas_name_the_five_functions() -> None:
    names = [s["function"]["name"] for s in TOOL_SCHEMAS]
    assert names == ["list_tools", "describe_binary", "run_binary", "mutate_binary",
                     "create_binary"]
    for s in TOOL_SCHEMAS:
        params = s["function"]["parameters"]
        assert params["type"] == "object" and set(params["required"]) <= set(params["properties"])


def test_solve_reuses_a_retrieved_tool(solver: Solver, chat_stub: ChatStub) -> None:
    chat_stub.replies += [
        [("run_binary", {"binary_id": "csv_rows", "input_json": '{"csv": "n,v\\nx,1"}'})],
        "The rows are [{n: x, v: 1}].",
    ]
    result = solver.solve("turn this comma separated text into json records")
    first = chat_stub.requests[0]["body"]
    assert first["tools"] == TOOL_SCHEMAS
    assert "- csv_rows: Convert CSV text into JSON objects." in first["messages"][1]["content"]
    [tool_msg] = tool_messages(chat_stub, 1)
    assert json.loads(str(tool_msg["content"])) == {"output": [{"n": "x", "v": "1"}]}
    assert result.outcome == "reused" and result.answer.startswith("The rows")
    assert solver.stats.read()["reused"] == 1 and solver.stats.read()["tasks"] == 1
    assert solver.store.get("csv_rows").meta["metrics"]["uses"] == 1


def test_solve_creates_a_tool_when_none_fits(solver: Solver, chat_stub: ChatStub) -> None:
    chat_stub.replies += [
        [("create_binary", {"task_description": "count words in a text", "name": "word_count"})],
        WRITER,  # the independent test writer's request, same endpoint
        answer(),  # the author's request
        [("run_binary", {"binary_id": "word_count", "input_json": '{"text": "a b c"}'})],
        "3 words.",
    ]
    result = solver.solve("how many words are in 'a b c'?")
    assert result.created == ["word_count"] and result.outcome == "created"
    assert json.loads(str(tool_messages(chat_stub, 4)[-1]["content"])) == {"output": {"words": 3}}
    assert result.spent["requests"] == 5 and result.spent["tokens"] == 5 * 20
    assert "word_count" in solver.index  # the new tool is searchable at once
    assert solver.index.search("number of words in a sentence", k=1)[0].tool_id == "word_count"
    assert solver.store.get("word_count").meta["embedding_model"] == solver.index.model_id
    assert (solver.store.get("word_count").path / "embedding.vec").stat().st_size == 384 * 4
    stats = SolveStats(stats_path(solver.store.root)).read()
    assert stats["created"] == 1 and stats["reused"] == 0


def test_solve_mutates_then_runs_the_child(solver: Solver, chat_stub: ChatStub) -> None:
    src = ("import json, sys\nd = json.load(sys.stdin)\nsep = d.get('sep', ',')\n"
           "rows = [r.split(sep) for r in d['csv'].splitlines()]\n"
           "json.dump([dict(zip(rows[0], r)) for r in rows[1:]], sys.stdout)")
    chat_stub.replies += [
        [("mutate_binary", {"parent_id": "csv_rows", "task_description": "support sep",
                            "failing_input_json": '{"csv": "a;b\\n1;2", "sep": ";"}'})],
        writer_answer([
            {"input": {"csv": "k;v\nx;y", "sep": ";"}, "expected": [{"k": "x", "v": "y"}]},
            {"input": {"csv": "p;q\n1;2", "sep": ";"}, "expected": [{"p": "1", "q": "2"}]},
            {"input": {"csv": "k,v\nx,y"}, "expected": [{"k": "x", "v": "y"}]}]),
        answer(src=src, cases=json.dumps([
            {"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]},
            {"input": {"csv": "a;b\n1;2", "sep": ";"}, "expected": [{"a": "1", "b": "2"}]},
            {"input": {"csv": "z\n0"}, "expected": [{"z": "0"}]}])),
        [("run_binary", {"binary_id": "csv_rows", "input_json": '{"csv": "a;b\\n1;2", "sep": ";"}'})],
        "done",
    ]
    result = solver.solve("semicolon separated values to json")
    assert result.mutated == ["csv_rows"] and result.outcome == "mutated"
    assert "a;b" in chat_stub.user_messages(2)[0]  # the failing input reached the author
    assert len(solver.store.versions("csv_rows")) == 2


def test_bad_calls_are_answered_with_errors_not_crashes(
    solver: Solver, chat_stub: ChatStub
) -> None:
    solver.limits = replace(solver.limits, calls_per_turn=8)
    chat_stub.replies += [
        [("run_binary", {"binary_id": "nope", "input_json": "{}"}),
         ("run_binary", {"binary_id": "csv_rows", "input_json": "{oops"}),
         ("describe_binary", {}),
         ("teleport", {}),
         ("list_tools", {"k": 1e999}),
         ("list_tools", {"k": None, "query": "csv"})],
        [("describe_binary", {"binary_id": "csv_rows"})],
        "I could not do it.",
    ]
    result = solver.solve("convert csv")
    errors = [json.loads(str(m["content"])) for m in tool_messages(chat_stub, 1)]
    assert "ToolNotFound" in errors[0]["error"]
    assert "not valid JSON" in errors[1]["error"]
    assert "missing argument" in errors[2]["error"]
    assert "unknown function" in errors[3]["error"]
    assert "bad argument k" in errors[4]["error"]  # 1e999 is infinity, not an integer
    assert errors[5][0]["id"] == "csv_rows"  # k: null means the default
    described = json.loads(str(tool_messages(chat_stub, 2)[-1]["content"]))
    assert described["id"] == "csv_rows"
    assert all(not c.get("hidden") for c in described["examples"])
    assert "q9" not in json.dumps(described)
    assert result.outcome == "unsolved"  # every run failed, so its answer stands on nothing


def test_a_model_that_never_answers_is_stopped(
    tmp_path: Path, solver: Solver, chat_stub: ChatStub
) -> None:
    solver.max_steps = 3
    chat_stub.replies += [[("list_tools", {"query": "csv"})]] * 3
    result = solver.solve("loop forever")
    assert result.outcome == "unsolved" and result.answer.startswith("stopped")
    listed = json.loads(str(tool_messages(chat_stub, 1)[0]["content"]))
    assert listed[0]["id"] == "csv_rows"
    assert solver.stats.read()["unsolved"] == 1


def test_stats_survive_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{broken")
    stats = SolveStats(path)
    assert stats.read()["tasks"] == 0
    stats.bump("reused")
    stats.bump("created")
    assert SolveStats(path).read() == {"tasks": 2, "reused": 1, "mutated": 0, "created": 1,
                                       "no_tool": 0, "unsolved": 0, "budget_exceeded": 0}
    assert SolveStats.reuse_rate(SolveStats(path).read()) == 0.5


def test_open_index_rebuilds_after_a_model_change(tmp_path: Path, embedder: E5Embedder) -> None:
    from test_retrieval_index import FakeEmbedder

    store = SkillStore(tmp_path / "store")
    csv_parent(store)
    sync_index(store, open_index(store, FakeEmbedder()))
    assert open_index(store, FakeEmbedder()).model_id == "test/other-model"
    index = open_index(store, embedder)
    assert index.model_id == embedder.model_id and "csv_rows" in index
    sync_index(store, index)
    assert store.get("csv_rows").meta["embedding_model"] == embedder.model_id


def test_list_without_query_and_inputs_sent_as_objects(
    solver: Solver, chat_stub: ChatStub
) -> None:
    chat_stub.replies += [
        [("list_tools", {}),
         ("run_binary", {"binary_id": "csv_rows", "input_json": {"csv": "k\nv"}})],
        "ok",
    ]
    result = solver.solve("convert csv")
    listed, ran = (json.loads(str(m["content"])) for m in tool_messages(chat_stub, 1))
    assert listed == [{"id": "csv_rows", "description": "Convert CSV text into JSON objects."}]
    assert ran == {"output": [{"k": "v"}]}
    assert result.outcome == "reused"
