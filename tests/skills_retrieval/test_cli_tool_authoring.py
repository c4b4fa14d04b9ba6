from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from openai_stub import ChatStub
from test_authoring_llm import WRITER, answer
from typer.testing import CliRunner

from ouroboros.capabilities.skills.starter import HERE
from ouroboros.interfaces.cli import tool_authoring
from ouroboros.kernel import OuroError, Runtime

STARTER = HERE


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    tool_authoring.register(app)
    return app


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ws"
    Runtime.init(h).close()
    return h


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OURO_LLM_BACKOFF", "0.001")
    for name in ("OURO_LLM_BASE_URL", "OURO_LLM_MODEL", "OURO_LLM_API_KEY", "OPENAI_BASE_URL",
                 "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def invoke(args: list[str]) -> tuple[int, str, OuroError | None]:
    result = CliRunner().invoke(make_app(), args)
    err = result.exception if isinstance(result.exception, OuroError) else None
    code = getattr(err, "exit_code", result.exit_code) if err else result.exit_code
    return code, result.output, err


def add_starters(home: Path, names: list[str]) -> None:
    with Runtime.open(home) as rt:
        store = tool_authoring.store_for(rt)
        for n in names:
            store.add_dir(STARTER / n)


def test_search_finds_starter_tools_and_prints_json(home: Path, no_llm_env: None) -> None:
    add_starters(home, ["word_stats", "unit_convert", "json_path"])
    code, out, _ = invoke(["search", "convert miles to km", "-k", "2", "--json",
                           "--home", str(home)])
    assert code == 0, out
    data = json.loads(out)
    assert data["results"][0]["tool_id"] == "unit_convert"
    assert len(data["results"]) == 2
    assert data["model"].startswith("static-e5-small")
    assert data["semantic_model"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert data["results"][0]["semantic_rank"] is not None
    code, out, _ = invoke(["search", "convert miles to km", "--mode", "fast", "--json",
                           "--home", str(home)])
    assert code == 0 and json.loads(out)["semantic_model"] is None
    code, out, _ = invoke(["search", "how many words in my essay", "--home", str(home)])
    assert code == 0 and out.startswith("1. word_stats")


def test_search_usage_errors_exit_2(home: Path) -> None:
    code, out, _ = invoke(["search", "x", "--mode", "magic", "--home", str(home)])
    assert code == 2 and "magic" in out and "fused" in out  # the choices are listed


def test_search_on_an_empty_workspace_says_how_to_add(home: Path) -> None:
    code, out, _ = invoke(["search", "anything", "--home", str(home)])
    assert code == 0 and "ouro tool add" in out


def test_create_without_endpoint_exits_1_and_says_what_to_set(
    home: Path, no_llm_env: None
) -> None:
    code, _, err = invoke(["create", "count words", "--home", str(home)])
    assert code == 1 and err is not None
    assert "no" in err.message and "LLM endpoint" in err.message
    assert "OURO_LLM_BASE_URL" in err.hint and "ouro tool add" in err.hint
    code, _, err = invoke(["mutate", "word_stats", "x", "--home", str(home)])
    assert code == 1 and err is not None and "OURO_LLM_MODEL" in err.hint


def test_create_mutate_solve_stats_history_through_the_endpoint(
    home: Path, chat_stub: ChatStub, monkeypatch: pytest.MonkeyPatch, no_llm_env: None
) -> None:
    monkeypatch.setenv("OURO_LLM_BASE_URL", chat_stub.base_url)
    monkeypatch.setenv("OURO_LLM_MODEL", "stub-model")
    chat_stub.replies += [WRITER, answer(),
                          "1. how long is my essay in words\n- word count of this text"]
    code, out, _ = invoke(["create", "count the words of a text", "--name", "wc",
                           "--json", "--home", str(home)])
    assert code == 0, out
    created = json.loads(out)
    assert created["id"] == "wc" and created["attempts"] == 1
    assert created["status"] == "proven" and created["evidence"]["independent"] == 3
    index_root = Path(next(home.rglob("index/entries.jsonl"))).parent
    entry = json.loads((index_root / "entries.jsonl").read_text().splitlines()[-1])
    assert entry["tool_id"] == "wc"  # the model's example requests are indexed with the tool
    assert "asked as: how long is my essay in words | word count of this text" in entry["text"]

    chat_stub.replies += [WRITER, answer(src="import json, sys\nraise SystemExit('no')")]
    code, _, err = invoke(["mutate", "wc", "break it", "--repairs", "0", "--home", str(home)])
    assert code == 3 and err is not None and "failed after 1 attempt" in err.message

    chat_stub.replies += [
        [("run_binary", {"binary_id": "wc", "input_json": '{"text": "x y"}'})], "2 words"]
    code, out, _ = invoke(["solve", "count words in 'x y'", "--json", "--home", str(home)])
    assert code == 0, out
    assert json.loads(out)["outcome"] == "reused"
    usage = [json.loads(ln) for ln in (index_root / "usage.jsonl").read_text().splitlines()]
    assert [u["tool"] for u in usage] == ["wc"]  # the tool that served the task is learnt
    assert "x y" not in (index_root / "usage.jsonl").read_text()

    code, out, _ = invoke(["stats", "--json", "--home", str(home)])
    assert json.loads(out)["reused"] == 1 and json.loads(out)["reuse_rate"] == 1.0

    code, out, _ = invoke(["history", "wc", "--json", "--home", str(home)])
    outcomes = [(r["action"], r["outcome"]) for r in json.loads(out)]
    assert outcomes == [("test_writer", "accepted"), ("create", "accepted"),
                        ("test_writer", "accepted"), ("mutate", "rejected")]


def test_solve_rejects_bad_input_json(home: Path) -> None:
    code, _, err = invoke(["solve", "x", "--input", "{bad", "--home", str(home)])
    assert code == 2 and err is not None and "--input" in err.message


def test_run_demo_narrates_offline(tmp_path: Path, no_llm_env: None) -> None:
    lines: list[str] = []
    with Runtime.init(tmp_path / "demo") as rt:
        tool_authoring.run_demo(rt, lines.append)
    text = "\n".join(lines)
    assert "Indexed 7 tools" in text
    assert "search 'turn a spreadsheet export into json records' → csv_to_json" in text
    assert "search 'what is 70 degrees fahrenheit in celsius' → unit_convert" in text
    assert "BM25 alone finds 0 tool(s)" in text
    assert '[{"city": "Oslo"' in text


def test_create_waiting_for_approval_exits_4(
    home: Path, chat_stub: ChatStub, monkeypatch: pytest.MonkeyPatch, no_llm_env: None
) -> None:
    from test_authoring_governed import require_approval_for_skills

    with Runtime.open(home) as rt:
        require_approval_for_skills(rt)
    monkeypatch.setenv("OURO_LLM_BASE_URL", chat_stub.base_url)
    monkeypatch.setenv("OURO_LLM_MODEL", "stub-model")
    chat_stub.replies += [WRITER, answer()]
    code, _, err = invoke(["create", "count words", "--name", "wc", "--home", str(home)])
    assert code == 4 and err is not None
    assert "waits for approval" in err.message and err.hint.startswith("approve with: ouro approve")


def test_a_run_after_a_search_teaches_the_index(home: Path, no_llm_env: None) -> None:
    from ouroboros.interfaces.cli.tool import app as tool_app

    add_starters(home, ["unit_convert", "word_stats"])
    code, out, _ = invoke(["search", "how far is a marathon in miles", "--json",
                           "--home", str(home)])
    assert code == 0 and json.loads(out)["results"][0]["tool_id"] == "unit_convert"
    result = CliRunner().invoke(tool_app, ["run", "unit_convert", "--input",
                                           '{"value": 42.195, "from": "km", "to": "mi"}',
                                           "--home", str(home)])
    assert result.exit_code == 0, result.output
    usage_file = next(home.rglob("index/usage.jsonl"))
    assert [json.loads(ln)["tool"] for ln in usage_file.read_text().splitlines()] == [
        "unit_convert"]
    code, out, _ = invoke(["search", "how far is a marathon in km", "--json",
                           "--home", str(home)])
    assert json.loads(out)["results"][0]["use_rank"] == 1
