from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai_stub import ChatStub

from llm.scripts import writer_answer
from ouroboros.capabilities.skills import SkillStore, ToolSpec
from ouroboros.capabilities.skills.authoring import (
    AuthoringFailed,
    ToolAuthor,
    name_from_task,
    read_history,
)
from ouroboros.capabilities.skills.llm import OpenAICompatibleProvider
from ouroboros.capabilities.skills.prompts import FailingCase

META = '{"name": "ignored", "description": "Count the words in a text.", "language": "python", "runtime": "micropython"}'
GOOD_SRC = "import json, sys\nd = json.load(sys.stdin)\njson.dump({'words': len(d['text'].split())}, sys.stdout)"
CASES = '[{"input": {"text": "a b"}, "expected": {"words": 2}}, {"input": {"text": ""}, "expected": {"words": 0}}, {"input": {"text": " x  "}, "expected": {"words": 1}}]'
#: The independent test writer's answer for "count words" (it never sees the code).
WRITER = writer_answer(
    [{"input": {"text": "one two three"}, "expected": {"words": 3}},
     {"input": {"text": "  spaced   out "}, "expected": {"words": 2}},
     {"input": {"text": "single"}, "expected": {"words": 1}}],
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    {"type": "object", "properties": {"words": {"type": "integer", "minimum": 0}},
     "required": ["words"]})


def answer(src: str = GOOD_SRC, cases: str = CASES, meta: str = META) -> str:
    return (f"Sure.\n```json meta.json\n{meta}\n```\n```python src/main.py\n{src}\n```\n"
            f"```json tests/cases.json\n{cases}\n```\n")


def csv_parent(store: SkillStore) -> str:
    src = (b"import json, sys\nd = json.load(sys.stdin)\nrows = [r.split(',') for r in "
           b"d['csv'].splitlines()]\njson.dump([dict(zip(rows[0], r)) for r in rows[1:]], "
           b"sys.stdout)\n")
    cases = json.dumps([
        {"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]},
        {"input": {"csv": "secret_col,z\nq9,w8"}, "expected": [{"secret_col": "q9", "z": "w8"}],
         "hidden": True},
    ]).encode()
    v = store.add(ToolSpec("csv_rows", "Convert CSV text into JSON objects.", "python",
                           {"src/main.py": src, "tests/cases.json": cases}, runtime="micropython"))
    return v.fingerprint


@pytest.fixture
def store(tmp_path: Path) -> SkillStore:
    return SkillStore(tmp_path / "store")


def test_create_registers_a_tested_version_and_records_history(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.replies += [WRITER, answer()]
    accepted = []
    done = ToolAuthor(store, provider, on_accepted=accepted.append).create(
        "count the words in a text", name="word_count")
    assert done.attempts == 1
    assert done.version.tool_id == "word_count"  # our name, not the model's
    assert store.run("word_count", {"text": "one two three"}).output == {"words": 3}
    assert accepted == [done.version]
    writer, rec = read_history(store.root, "word_count")
    assert writer["action"] == "test_writer" and writer["outcome"] == "accepted"
    assert rec["outcome"] == "accepted" and rec["fingerprint"] == done.version.fingerprint
    assert rec["model"] == "stub-model" and "count the words" in rec["prompt"]
    assert "Tool name: word_count" in chat_stub.user_messages(1)[0]
    # the code writer never saw the test writer's cases; they judge it as hidden cases
    assert "spaced   out" not in json.dumps(chat_stub.requests[1]["body"])
    assert "import json" not in json.dumps(chat_stub.requests[0]["body"])
    assert done.evidence["independent"] == 3 and done.evidence["cases"]["property"] == 5
    assert done.version.meta["origin"] == "llm:stub-model"


def test_failing_tests_go_back_for_repair(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    wrong = GOOD_SRC.replace("len(d['text'].split())", "len(d['text'])")
    chat_stub.replies += [WRITER, answer(src=wrong), answer()]
    done = ToolAuthor(store, provider, max_repairs=2).create("count words", name="wc")
    assert done.attempts == 2
    repair = chat_stub.user_messages(2)[-1]
    assert "rejected (tests)" in repair and "expected" in repair
    hist = read_history(store.root, "wc")
    assert [h["outcome"] for h in hist] == ["accepted", "rejected", "accepted"]
    assert hist[1]["reason"] == "tests"


def test_build_errors_and_unparseable_answers_are_repaired_too(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.replies += [WRITER, "I would use split().", answer(cases="[not json"), answer()]
    done = ToolAuthor(store, provider, max_repairs=2).create("count words", name="wc2")
    assert done.attempts == 3
    reasons = [h.get("reason") for h in read_history(store.root, "wc2")]
    assert reasons == [None, "format", "malformed", None]
    assert "no file blocks" in chat_stub.user_messages(2)[-1]


def test_giving_up_leaves_no_version_and_says_why(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    bad = "import json, sys\nraise SystemExit('boom')"
    chat_stub.replies += [WRITER, answer(src=bad), answer(src=bad)]
    with pytest.raises(AuthoringFailed) as e:
        ToolAuthor(store, provider, max_repairs=1).create("count words", name="never")
    assert e.value.attempts == 2 and e.value.reason == "tests"
    assert store.list() == []
    assert not (store.root / "tools" / "never" / "versions").exists()
    assert len(read_history(store.root, "never")) == 3


def test_mutate_shows_visible_tests_only_and_keeps_hidden_cases_as_a_gate(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    parent_fp = csv_parent(store)
    semi_src = ("import json, sys\nd = json.load(sys.stdin)\nsep = d.get('sep', ',')\n"
                "rows = [r.split(sep) for r in d['csv'].splitlines()]\n"
                "json.dump([dict(zip(rows[0], r)) for r in rows[1:]], sys.stdout)")
    cases = ('[{"input": {"csv": "a;b\\n1;2", "sep": ";"}, "expected": [{"a": "1", "b": "2"}]},'
             ' {"input": {"csv": "a|b\\n1|2", "sep": "|"}, "expected": [{"a": "1", "b": "2"}]},'
             ' {"input": {"csv": "a,b\\n1,2"}, "expected": [{"a": "1", "b": "2"}]}]')
    meta = '{"name": "x", "description": "CSV (any delimiter) to JSON objects.", "language": "python", "runtime": "micropython"}'
    chat_stub.replies += [writer_answer([
        {"input": {"csv": "k;v\nx;y", "sep": ";"}, "expected": [{"k": "x", "v": "y"}]},
        {"input": {"csv": "k,v\nx,y"}, "expected": [{"k": "x", "v": "y"}]},
        {"input": {"csv": "k\tv\nx\ty", "sep": "\t"}, "expected": [{"k": "x", "v": "y"}]}]),
        answer(src=semi_src, cases=cases, meta=meta)]
    done = ToolAuthor(store, provider).mutate(
        "csv_rows", "accept a 'sep' field for the delimiter",
        failing=[FailingCase({"csv": "a;b\n1;2", "sep": ";"}, "one column only")])
    writer_prompt = chat_stub.user_messages(0)[0]
    assert "rows = [r.split" not in writer_prompt  # the test writer never sees code
    assert "q9" not in writer_prompt and '"a,b\\n1,2"' in writer_prompt
    prompt = chat_stub.user_messages(1)[0]
    assert "rows = [r.split(',')" in prompt  # the parent's source
    assert '"a,b\\n1,2"' in prompt  # a visible case
    assert "secret_col" not in prompt and "q9" not in prompt  # never the hidden case
    assert "one column only" in prompt
    v = done.version
    assert v.parent == parent_fp and v.tool_id == "csv_rows"
    stored = v.cases(include_hidden=True)
    assert any(c.hidden and c.input == {"csv": "secret_col,z\nq9,w8"} for c in stored)
    assert store.run("csv_rows", {"csv": "x;y\n3;4", "sep": ";"}).output == [{"x": "3", "y": "4"}]
    assert [x.fingerprint for x in store.lineage("csv_rows")] == [parent_fp, v.fingerprint]


def test_a_mutation_that_breaks_a_hidden_case_is_refused_without_revealing_it(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    csv_parent(store)
    # passes the visible case by hard-coding it, fails the hidden one
    cheat = "import json, sys\njson.load(sys.stdin)\njson.dump([{'a': '1', 'b': '2'}], sys.stdout)"
    three = json.dumps([{"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]}] * 3)
    chat_stub.replies.append(answer(src=cheat, cases=three))
    with pytest.raises(AuthoringFailed) as e:
        ToolAuthor(store, provider, max_repairs=0, test_writer=False).mutate(
            "csv_rows", "make it faster")
    assert e.value.reason == "tests" and "hidden" in e.value.detail
    assert "q9" not in e.value.detail and "secret_col" not in e.value.detail
    assert len(store.versions("csv_rows")) == 1
    hist = read_history(store.root, "csv_rows")
    assert "q9" not in json.dumps(hist)


def test_mutate_under_a_new_name_keeps_lineage(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    parent_fp = csv_parent(store)
    # the model returns only the source and the visible case again: tests come from the parent
    visible = json.dumps([{"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]}] * 3)
    chat_stub.replies.append("```python src/main.py\n" + (
        "import json, sys\nd = json.load(sys.stdin)\nrows = [r.split(',') for r in "
        "d['csv'].splitlines()]\njson.dump([dict(zip(rows[0], r)) for r in rows[1:]], "
        "sys.stdout)\n") + "```\n```json tests/cases.json\n" + visible + "\n```")
    v = ToolAuthor(store, provider, test_writer=False).mutate(
        "csv_rows", "same, as its own tool", name="csv_rows_v2").version
    assert v.tool_id == "csv_rows_v2" and v.parent == parent_fp
    assert v.runtime == "micropython"  # kept from the parent when the model does not say
    assert json.loads(v.files(include_hidden=True)["tests/cases.json"]) == json.loads(
        store.get("csv_rows").files(include_hidden=True)["tests/cases.json"])
    assert len(store.versions("csv_rows")) == 1


def test_create_never_overwrites_an_existing_tool(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    csv_parent(store)
    with pytest.raises(ValueError, match="already exists"):
        ToolAuthor(store, provider).create("anything", name="csv_rows")
    chat_stub.replies += [WRITER, answer()]
    v = ToolAuthor(store, provider).create("csv rows").version
    assert v.tool_id == "csv_rows_2"


def test_bad_arguments_are_refused_before_any_request(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    author = ToolAuthor(store, provider)
    with pytest.raises(ValueError, match="empty"):
        author.create("  ")
    with pytest.raises(ValueError, match="invalid"):
        author.create("x", name="Bad-Name")
    with pytest.raises(ValueError, match="not supported"):
        author.create("x", name="ok_name", language="cobol")
    assert chat_stub.requests == []


def test_name_from_task_is_always_a_valid_tool_name() -> None:
    assert name_from_task("Convert a CSV file into JSON!") == "convert_csv_file_json"
    assert name_from_task("123 go") == "tool_123_go"
    assert name_from_task("!!!") == "tool"


def test_a_mutation_identical_to_its_parent_is_sent_back(
    store: SkillStore, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    csv_parent(store)
    visible = json.dumps([{"input": {"csv": "a,b\n1,2"}, "expected": [{"a": "1", "b": "2"}]}] * 3)
    same = ("```python src/main.py\n" + store.get("csv_rows").source + "```\n"
            "```json tests/cases.json\n" + visible + "\n```")
    chat_stub.replies += [same, same]
    with pytest.raises(AuthoringFailed) as e:
        ToolAuthor(store, provider, max_repairs=1, test_writer=False).mutate(
            "csv_rows", "handle quotes")
    assert e.value.reason == "unchanged"
    assert "identical to the current version" in chat_stub.user_messages(1)[-1]
    assert len(store.versions("csv_rows")) == 1
