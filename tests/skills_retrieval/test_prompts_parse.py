from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ouroboros.capabilities.skills.prompts import (
    AnswerFormatError,
    FailingCase,
    mutate_prompt,
    parse_files,
    redact_hidden,
    render_file,
)


def test_paths_in_info_strings() -> None:
    answer = (
        "Here you go.\n```json meta.json\n{\"name\": \"x\"}\n```\n"
        "```python src/main.py\nprint(1)\n```\n"
        "```json title=tests/cases.json\n[]\n```\n"
    )
    assert parse_files(answer) == {"meta.json": '{"name": "x"}\n', "src/main.py": "print(1)\n",
                                   "tests/cases.json": "[]\n"}


def test_paths_on_the_line_before_the_fence() -> None:
    answer = "**src/main.py**\n```python\nx = 1\n```\n\n### `tests/cases.json`\n```\n[1]\n```"
    assert parse_files(answer) == {"src/main.py": "x = 1\n", "tests/cases.json": "[1]\n"}


def test_unlabelled_blocks_and_foreign_paths_are_ignored() -> None:
    answer = "```python\nimport os\n```\n```sh /etc/passwd\nx\n```\n```python src/main.py\nok\n```"
    assert parse_files(answer) == {"src/main.py": "ok\n"}


def test_parent_directory_paths_are_refused() -> None:
    with pytest.raises(AnswerFormatError, match="no file blocks"):
        parse_files("```python src/../../evil.py\nx\n```")


def test_no_blocks_is_a_format_error_that_says_the_format() -> None:
    with pytest.raises(AnswerFormatError, match=r"```python src/main\.py"):
        parse_files("I think you should write a loop.")


def test_later_block_for_the_same_path_wins() -> None:
    answer = "```python src/main.py\nv1\n```\noops\n```python src/main.py\nv2\n```"
    assert parse_files(answer)["src/main.py"] == "v2\n"


def test_nested_backticks_inside_a_longer_fence() -> None:
    answer = "````python src/main.py\ns = '```'\n```\n````"
    assert parse_files(answer)["src/main.py"] == "s = '```'\n```\n"


@given(st.dictionaries(
    st.sampled_from(["meta.json", "src/main.py", "src/util.py", "tests/cases.json"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=80),
    min_size=1))
def test_render_then_parse_round_trips(files: dict[str, str]) -> None:
    answer = "\n\n".join(render_file(p, c) for p, c in files.items())
    parsed = parse_files(answer)
    assert {p: c.rstrip() for p, c in parsed.items()} == {p: c.rstrip() for p, c in files.items()}


def test_mutate_prompt_shows_visible_tests_and_failures_but_not_hidden_ones() -> None:
    visible = [{"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]}]
    prompt = mutate_prompt(
        "use ';' as the delimiter", "csv_to_json", "CSV to JSON", "python",
        {"src/main.py": "import json\n"}, visible, has_hidden=True,
        failing=[FailingCase({"csv": "a;b"}, "got one column")],
    )
    assert "use ';' as the delimiter" in prompt
    assert "import json" in prompt
    assert json.dumps(visible, indent=1) in prompt
    assert "hidden tests that you cannot see" in prompt
    assert '{"csv": "a;b"}' in prompt and "got one column" in prompt


def test_redact_hidden_removes_hidden_values() -> None:
    hidden = [{"input": {"secret": "zebra-42"}, "expected": "ZEBRA-42", "hidden": True}]
    detail = 'case 3 failed: input {"secret": "zebra-42"} expected "ZEBRA-42" got "zebra"'
    out = redact_hidden(detail, hidden)
    assert "zebra-42" not in out and "ZEBRA-42" not in out
    assert "case 3 failed" in out


@given(st.text(max_size=400))
def test_any_answer_parses_or_fails_with_the_format_error(text: str) -> None:
    try:
        files = parse_files(text)
    except AnswerFormatError:
        return
    for path in files:
        assert path == "meta.json" or path.split("/")[0] in ("src", "tests")
        assert ".." not in path.split("/")
