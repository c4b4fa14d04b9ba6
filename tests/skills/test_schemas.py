"""Tool schemas: inference properties, declared schemas in the fingerprint, refusal at run,
the gate's check, and the OpenAI / MCP export shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from ouroboros.capabilities.skills import (
    InputRejected,
    MalformedTool,
    OutputRejected,
    SkillStore,
    ToolRejected,
    load_tool_dir,
)
from ouroboros.capabilities.skills.artifacts import compute_fingerprint
from ouroboros.capabilities.skills.blobs import blob_hash
from ouroboros.capabilities.skills.builders import Built
from ouroboros.capabilities.skills.export import as_mcp, as_openai, input_of, wraps
from ouroboros.capabilities.skills.schemas import (
    case_problems,
    infer_input_schema,
    infer_output_schema,
    schema_problems,
    schemas_for,
)
from ouroboros.capabilities.skills.spec import TestCase as Case
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.kernel import canonical_bytes, hash_bytes

from .conftest import SpecFactory, cases

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not 2**53 <= abs(f) < 1e21) | \
    st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)


@st.composite
def case_lists(draw: st.DrawFn) -> list[Case]:
    items = draw(st.lists(st.tuples(json_values, st.sampled_from(["expected", "error"]),
                                    json_values), min_size=1, max_size=8))
    return [Case(input=i, expected=out if kind == "expected" else None,
                     expected_error="value must be a number" if kind == "error" else None,
                     index=n) for n, (i, kind, out) in enumerate(items)]


@settings(max_examples=80, deadline=None)
@given(case_lists())
def test_every_case_input_and_output_fits_the_inferred_schemas(tests: list[Case]) -> None:
    schemas = schemas_for(tests)
    jsonschema.Draft202012Validator.check_schema(schemas.input)
    jsonschema.Draft202012Validator.check_schema(schemas.output)
    for case in tests:
        assert schema_problems(schemas.input, case.input) == [], (schemas.input, case.input)
        if case.expected_error is None:
            assert schema_problems(schemas.output, case.expected) == []
    assert case_problems(tests, schemas) == []


@pytest.mark.parametrize("directory", starter_dirs(), ids=lambda d: d.name)
def test_starter_tools_fit_their_inferred_schemas(directory: Path) -> None:
    spec = load_tool_dir(directory)
    assert case_problems(spec.cases(), schemas_for(spec.cases())) == []


def _case(value: Any, expected: Any = 0, error: str | None = None) -> Case:
    return Case(input=value, expected=None if error else expected, expected_error=error)


def test_few_cases_constrain_nothing() -> None:
    # a doubler tested on 2 alone may well double "ab": two cases say too little
    assert infer_input_schema([_case(2), _case(3)]) == {}
    assert infer_output_schema([_case(2), _case(3)]) == {}


def test_inference_keeps_optional_keys_optional_and_types_what_it_saw() -> None:
    tests = [_case({"date": "2026-11-23"}), _case({"date": "1/2/2026", "us": True}),
             _case({"date": "x"}), _case("2026-11-23")]
    schema = infer_input_schema(tests)
    assert schema["type"] == ["string", "object"]
    assert schema["required"] == ["date"]  # three objects all had it; "us" only one
    assert schema_problems(schema, {"date": "5 May 2026"}) == []
    assert schema_problems(schema, 42) != []  # never seen: refused before the sandbox


def test_a_type_seen_only_in_error_cases_is_left_to_the_tools_own_message() -> None:
    tests = [_case([1]), _case([2, 3]), _case([]), _case({"a": 1}, error="array of integers")]
    schema = infer_input_schema(tests)
    assert schema_problems(schema, {"not": "a list"}) == []  # the tool says why
    assert schema_problems(schema, ["x"]) != []


def test_three_kinds_at_one_place_mean_any_value() -> None:
    tests = [_case({"data": 1, "path": "$"}), _case({"data": [1], "path": "$[0]"}),
             _case({"data": {"a": 1}, "path": "$.a"})]
    schema = infer_input_schema(tests)
    assert schema["properties"]["data"] == {}
    assert schema["properties"]["path"] == {"type": "string"}


# -- declared schemas and the fingerprint ------------------------------------------------
def test_a_spec_without_schemas_keeps_the_fingerprint_it_always_had(
        make_spec: SpecFactory) -> None:
    spec = make_spec("double", source=DOUBLE, tests=cases((2, 4)))
    built = Built("wasi", "", "", b"\0asm")
    old = {"name": spec.name, "description": spec.description, "language": spec.language,
           "runtime": "wasi", "interpreter": "", "wasm": blob_hash(b"\0asm"),
           "files": {rel: blob_hash(data) for rel, data in sorted(spec.files.items())}}
    assert compute_fingerprint(spec, built) == \
        hash_bytes(canonical_bytes(old)).split(":", 1)[1][:16]
    declared = replace(spec, input_schema={"type": "number"})
    assert compute_fingerprint(declared, built) != compute_fingerprint(spec, built)


def test_declared_schemas_are_recorded_and_inferred_ones_marked(
        store: SkillStore, make_spec: SpecFactory) -> None:
    plain = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), (3, 6), (5, 10))))
    assert plain.meta["schema_source"] == {"input": "inferred", "output": "inferred"}
    assert plain.meta["input_schema"] == {"type": "number"}
    typed = store.add(replace(make_spec("double2", source=DOUBLE, tests=cases((2, 4))),
                              input_schema={"type": "integer", "minimum": 0}))
    assert typed.meta["schema_source"]["input"] == "author"
    assert store.spec_of(typed).input_schema == {"type": "integer", "minimum": 0}


def test_an_input_off_the_schema_never_reaches_the_sandbox(
        store: SkillStore, make_spec: SpecFactory) -> None:
    store.add(replace(make_spec("double", source=DOUBLE, tests=cases((2, 4))),
                      input_schema={"type": "integer", "minimum": 0}))
    with pytest.raises(InputRejected, match="input schema"):
        store.run("double", -3)
    with pytest.raises(InputRejected):
        store.run("double", "ab")
    assert store.get("double").meta["metrics"]["uses"] == 0  # the tool never ran
    assert store.run("double", 4).output == 8


def test_an_output_off_the_declared_schema_is_a_tool_failure(
        store: SkillStore, make_spec: SpecFactory) -> None:
    store.add(replace(make_spec("double", source=DOUBLE, tests=cases((2, 4))),
                      output_schema={"type": "number", "maximum": 100}))
    with pytest.raises(OutputRejected, match="output schema"):
        store.run("double", 70)  # 140: the tool ran and broke its own contract
    m = store.get("double").meta["metrics"]
    assert m["uses"] == 1 and m["failures"] == 1


@pytest.mark.parametrize("schema,why", [
    ({"type": "string"}, "does not fit input_schema"),  # contradicts the cases
    ({"type": 12}, "not a valid JSON Schema"),
    ({"$ref": "https://example.com/s.json"}, "not a valid JSON Schema"),  # never fetched
    ({"enum": ["x" * 70_000]}, "bytes; at most"),
    ([1, 2], "JSON Schema object"),
])
def test_a_bad_declared_schema_is_refused_and_nothing_is_stored(
        store: SkillStore, make_spec: SpecFactory, schema: Any, why: str) -> None:
    spec = make_spec("double", source=DOUBLE, tests=cases((2, 4)))
    with pytest.raises((ToolRejected, MalformedTool)) as info:
        store.add(replace(spec, input_schema=schema))
    assert why in str(info.value)
    assert not (store.tools_dir / "double").exists()


def test_a_hidden_case_is_named_but_never_quoted() -> None:
    tests = [Case(input="secret-value", expected=1, hidden=True, index=3)]
    problems = case_problems(tests, schemas_for(tests, {"type": "number"}))
    assert problems and "hidden case 3" in problems[0] and "secret" not in problems[0]


# -- export ----------------------------------------------------------------------------
_OPENAI_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


def _arrays_have_items(schema: Any) -> bool:
    if isinstance(schema, dict):
        kinds = schema.get("type")
        if (kinds == "array" or (isinstance(kinds, list) and "array" in kinds)) \
                and "items" not in schema:
            return False
        return all(_arrays_have_items(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_arrays_have_items(v) for v in schema)
    return True


@pytest.mark.parametrize("directory", starter_dirs(), ids=lambda d: d.name)
def test_exports_have_the_openai_and_mcp_shapes(directory: Path) -> None:
    import re

    from mcp_types import Tool
    from openai.types.chat import ChatCompletionToolParam

    spec = load_tool_dir(directory)
    schemas = schemas_for(spec.cases())
    openai = as_openai(spec.name, spec.description, schemas)
    TypeAdapter(ChatCompletionToolParam).validate_python(openai)
    function = openai["function"]
    assert re.match(_OPENAI_NAME, function["name"]) and function["description"]
    assert function["parameters"]["type"] == "object"
    assert _arrays_have_items(function["parameters"])
    jsonschema.Draft202012Validator.check_schema(function["parameters"])

    mcp = as_mcp(spec.name, spec.description, schemas)
    tool = Tool.model_validate(mcp)
    assert tool.input_schema["type"] == "object" and tool.output_schema is not None
    assert tool.output_schema["type"] == "object"
    for case in spec.cases():  # every case's input travels through the arguments
        arguments = {"input": case.input} if wraps(schemas.input) else case.input
        assert schema_problems(tool.input_schema, arguments) == []
        assert input_of(arguments, schemas.input) == case.input


def test_a_wrapped_tool_takes_exactly_its_input_argument() -> None:
    with pytest.raises(InputRejected, match="one argument"):
        input_of({}, {"type": "number"})
    with pytest.raises(InputRejected, match="unexpected"):
        input_of({"input": 1, "rm": "-rf"}, {"type": "number"})
    assert json.dumps(input_of({"input": [1]}, {})) == "[1]"


def test_the_gate_refuses_a_skill_patch_whose_schema_contradicts_its_cases(
        tmp_path: Path, make_spec: SpecFactory) -> None:
    from ouroboros.capabilities.skills.governance import TEST_NAME, open_store, patch_value
    from ouroboros.kernel import Runtime

    Runtime.init(tmp_path / "ws").close()
    with Runtime.open(tmp_path / "ws") as rt:
        store = open_store(rt)
        v = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), (3, 6), (5, 10))))
        for tampered in ({"input_schema": {"type": "string"}},
                         {"schema_source": {"input": "author", "output": "inferred"}},
                         {"input_schema": {"type": 7}}):
            value = {**patch_value(v.meta), **tampered}
            outcome = rt.propose_and_submit(
                type="skill", target="skills/double", value=value, reasoning="tampered",
                tests=[TEST_NAME], author="skills", keys=["runtime"])
            assert outcome.status == "rejected", tampered
        assert rt.value("skills/double")["input_schema"] == {"type": "number"}
        assert store.run("double", 4).output == 8
