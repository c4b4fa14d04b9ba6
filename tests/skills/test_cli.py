"""`ouro tool` through Typer's runner, on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.tool import app
from ouroboros.kernel import Runtime

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    return home


def starter(name: str) -> Path:
    return next(d for d in starter_dirs() if d.name == name)


def invoke(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def test_add_run_list_describe_test(home: Path) -> None:
    code, out = invoke(home, "add", str(starter("sum_ints")), "--json")
    assert code == 0, out
    added = json.loads(out)
    assert added["status"] == "applied" and added["language"] == "wat"

    code, out = invoke(home, "run", "sum_ints", "--input", "[1, 2, 39]")
    assert (code, out.strip()) == (0, "42")
    code, out = invoke(home, "run", "sum_ints", "--input", "[1]", "--json")
    assert json.loads(out)["output"] == 1

    code, out = invoke(home, "list", "--json")
    (listed,) = json.loads(out)
    assert listed["fingerprint"] == added["fingerprint"] and listed["metrics"]["uses"] == 2

    code, out = invoke(home, "describe", "sum_ints", "--json")
    described = json.loads(out)
    assert described["lineage"] == [f"sum_ints@{added['fingerprint']}"]
    assert all(not c.get("hidden") for c in described["cases"])

    code, out = invoke(home, "test", "sum_ints", "--json")
    assert code == 0 and json.loads(out)["passed"] is True


def test_bad_input_json_is_a_usage_error(home: Path) -> None:
    invoke(home, "add", str(starter("sum_ints")))
    code, out = invoke(home, "run", "sum_ints", "--input", "[1,")
    assert code == 2 and "not valid JSON" in out


def test_unknown_tool_is_a_usage_error(home: Path) -> None:
    code, out = invoke(home, "describe", "nope")
    assert code == 2 and "ouro tool list" in out


def test_tool_error_exits_1_with_its_message(home: Path) -> None:
    invoke(home, "add", str(starter("sum_ints")))
    # an object fits the inferred schema (an error case of its own tests one), so it runs
    code, out = invoke(home, "run", "sum_ints", "--input", '{"a": 1}', "--json")
    assert code == 1
    assert json.loads(out)["error"]["details"]["kind"] == "ToolFailed"
    assert "JSON array of integers" in json.loads(out)["error"]["message"]


def test_an_input_off_the_schema_is_a_usage_error_and_the_tool_never_runs(home: Path) -> None:
    invoke(home, "add", str(starter("sum_ints")))
    code, out = invoke(home, "run", "sum_ints", "--input", '"text"', "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "usage" and "input schema" in error["message"]
    code, out = invoke(home, "describe", "sum_ints", "--json")
    assert json.loads(out)["metrics"]["uses"] == 0  # refused before the sandbox


def test_rejected_tool_exits_3_with_the_reason(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "src").mkdir(parents=True)
    (bad / "tests").mkdir()
    (bad / "meta.json").write_text(json.dumps(
        {"name": "bad", "description": "broken", "language": "wat"}))
    (bad / "src/main.wat").write_text("(module (func")
    (bad / "tests/cases.json").write_text('[{"input": 1, "expected": 1}]')
    code, out = invoke(home, "add", str(bad))
    assert code == 3 and "rejected (build)" in out
    code, out = invoke(home, "list", "--json")
    assert json.loads(out) == []


def test_malformed_directory_exits_3(home: Path, tmp_path: Path) -> None:
    code, out = invoke(home, "add", str(tmp_path))
    assert code == 3 and "has no meta.json" in out


def test_run_demo_narrates_the_loop(tmp_path: Path) -> None:
    from ouroboros.interfaces.cli.tool import run_demo

    lines: list[str] = []
    with Runtime.init(tmp_path / "demo") as rt:
        run_demo(rt, lines.append)
        assert rt.value("agents/analyst/tools") == ["checksum", "json_path", "unit_convert"]
    text = "\n".join(lines)
    assert "Added checksum@" in text and "run sum_ints: 42" in text
    assert "A careless mutation is rejected (tests)" in text
    assert "contained (limits)" in text and "FuelExhausted" in text


def test_run_limits_are_options(home: Path) -> None:
    invoke(home, "add", str(starter("sum_ints")))
    code, out = invoke(home, "run", "sum_ints", "--input", "[1, 2]", "--fuel", "50", "--json")
    assert code == 1 and json.loads(out)["error"]["details"]["kind"] == "FuelExhausted"
    invoke(home, "add", str(starter("checksum")))  # its 1 MiB stack alone needs > 1 MiB
    code, out = invoke(home, "run", "checksum", "--input", '"x"', "--memory", "1")
    assert code == 1 and "MemoryLimitExceeded" in out
