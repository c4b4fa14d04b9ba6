from __future__ import annotations

import json
from pathlib import Path

import pytest

from ouroboros.capabilities.skills import MalformedTool, ToolSpec, load_tool_dir
from ouroboros.capabilities.skills.spec import parse_cases

SRC = {"src/main.py": b"print(1)", "tests/cases.json": b'[{"input": 1, "expected": 1}]'}


def spec(**kw: object) -> ToolSpec:
    args: dict[str, object] = {"name": "t", "description": "d", "language": "python",
                               "files": dict(SRC)}
    args.update(kw)
    return ToolSpec(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "Bad-Name"}, "tool name 'Bad-Name' is invalid"),
        ({"description": "  "}, "has no description"),
        ({"language": "cobol"}, "language 'cobol' is not supported"),
        ({"files": {"tests/cases.json": SRC["tests/cases.json"]}}, "needs src/main.py"),
        ({"files": {"src/main.py": b"x"}}, "needs tests/cases.json"),
        ({"files": {**SRC, "../evil": b"x"}}, "must be relative"),
        ({"files": {**SRC, "/etc/passwd": b"x"}}, "must be relative"),
        ({"files": {**SRC, "other/x": b"x"}}, "must live under src/ or tests/"),
        ({"files": {**SRC, "tests/cases.json": b"[]"}}, "has no cases"),
        ({"files": {**SRC, "tests/cases.json": b"{"}}, "is not valid JSON"),
    ],
)
def test_malformed_specs_are_refused_with_the_reason(kw: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedTool, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec(**kw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'[{"expected": 1}]', "must be an object with an 'input'"),
        (b'[{"input": 1}]', "exactly one of 'expected', 'error' or 'schema'"),
        (b'[{"input": 1, "expected": 1, "error": "x"}]', "exactly one of"),
        (b'[{"input": 1, "expected": 1, "hidden": "yes"}]', "'hidden' must be true or false"),
        (b'[{"input": 1, "expected": 1, "bogus": 1}]', "unknown keys"),
        (b'{"input": 1}', "must be a JSON list"),
    ],
)
def test_malformed_cases_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedTool, match=message):
        parse_cases(raw)


def test_hidden_cases_are_kept_apart() -> None:
    raw = json.dumps([{"input": 1, "expected": 1}, {"input": 2, "expected": 2, "hidden": True}])
    s = spec(files={"src/main.py": b"x", "tests/cases.json": raw.encode()})
    assert [c.input for c in s.cases(include_hidden=False)] == [1]
    assert [c.hidden for c in s.cases()] == [False, True]


def test_load_tool_dir_reads_meta_src_and_tests(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "meta.json").write_text(
        json.dumps({"name": "x", "description": "d", "language": "python"})
    )
    (tmp_path / "src/main.py").write_text("print(1)")
    (tmp_path / "tests/cases.json").write_text('[{"input": 1, "expected": 1}]')
    s = load_tool_dir(tmp_path)
    assert s.name == "x" and set(s.files) == {"src/main.py", "tests/cases.json"}


def test_load_tool_dir_without_meta_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(MalformedTool, match=r"has no meta\.json"):
        load_tool_dir(tmp_path)


def test_load_tool_dir_refuses_symlinks(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "meta.json").write_text(
        json.dumps({"name": "x", "description": "d", "language": "python"})
    )
    (tmp_path / "src/main.py").symlink_to("/etc/passwd")
    with pytest.raises(MalformedTool, match="is a symlink"):
        load_tool_dir(tmp_path)
