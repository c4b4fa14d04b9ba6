"""Test cases from somewhere the code's author did not control.

- `examples_from_task`: examples the user wrote in the task, ``INPUT -> OUTPUT`` with JSON on
  both sides (``=>`` and ``→`` work too; ``INPUT -> error "phrase"`` expects an error).
- `TEST_WRITER_PROMPT` / `parse_test_writer`: a separate model call that sees the task (and,
  for a mutation, the parent's description and visible examples) but never any code, and
  answers with schemas and cases. Its cases become hidden cases: the code-writing call never
  sees them, in its prompt or in a repair message.
- `property_cases`: inputs generated from the input schema (seeded, so the same cases come
  back on every run), each checked against the output schema.
- `differential_cases`: an existing tool named as the reference, run on the same inputs; its
  outputs become the expected values.

Every case made here carries its `source`; `evidence.py` decides what the set proves.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ouroboros.capabilities.llm.untrusted import FENCE_RULE, fence

from .spec import names_an_error

MAX_CASES = 40
MAX_CASE_BYTES = 20_000
PROPERTY_INPUTS = 5

TEST_WRITER_PROMPT = f"""\
You write test cases for a small tool from its specification alone. You never see the tool's
code, and its author never sees your cases: they judge it.

The tool reads ONE JSON value from standard input and writes ONE JSON value to standard
output; on bad input it exits non-zero with a message on standard error.

Answer with one JSON object and nothing else:
{{"input_schema": <JSON Schema of the input>, "output_schema": <JSON Schema of the output>,
 "cases": [{{"input": <JSON>, "expected": <JSON>}}, {{"input": <JSON>, "error": "<words the error message must contain>"}}]}}

Write cases whose answers follow from the specification with certainty: typical inputs, edge
cases, and bad input where the specification says what happens. Compute every expected value
carefully. {{min_cases}} cases at least, {MAX_CASES} at most.

{FENCE_RULE}
"""


def test_writer_request(task: str, tool_id: str, min_cases: int, *,
                        parent_description: str | None = None,
                        parent_examples: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, str]]:
    """The messages of the test-writing call (no code in them, ever)."""
    user = f"Tool name: {tool_id}\n\nSpecification:\n{fence(task.strip(), 'task')}\n"
    if parent_description is not None:
        user += ("\nThis is a change to an existing tool. Its current description:\n"
                 f"{fence(parent_description, 'current description')}\n")
        if parent_examples:
            shown = json.dumps(list(parent_examples)[:10], indent=1)
            user += ("Some of its current cases (inputs and outputs only; the change may alter "
                     f"some):\n{fence(shown, 'current cases')}\n"
                     "Write cases for the tool as it must behave after the change.\n")
    return [{"role": "system", "content": TEST_WRITER_PROMPT.replace("{min_cases}",
                                                                      str(min_cases))},
            {"role": "user", "content": user}]


class _CaseWire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any
    expected: Any = None
    error: Annotated[str, Field(max_length=200)] | None = None


class _AnswerWire(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    cases: Annotated[list[_CaseWire], Field(min_length=1, max_length=MAX_CASES)]


class TestWriterError(ValueError):
    """The test-writing answer is unusable; nothing of it is used."""

    __test__ = False


class WrittenTests:
    """A usable test-writing answer: cases (as cases.json items) and the schemas, if they
    agree with the cases."""

    __test__ = False

    def __init__(self, cases: list[dict[str, Any]], input_schema: dict[str, Any] | None,
                 output_schema: dict[str, Any] | None, notes: list[str]) -> None:
        self.cases, self.input_schema, self.output_schema = cases, input_schema, output_schema
        self.notes = notes


def parse_test_writer(answer: str, min_cases: int) -> WrittenTests:
    """The test writer's JSON (bare or in a ```json block), validated.

    Raises:
        TestWriterError: not JSON, wrong shape, too few cases, an unnamed error, a case too big.
    """
    text = answer.strip()
    block = re.search(r"```(?:json)?\s*\n(.*?)\n```", text, re.S)
    if block:
        text = block.group(1)
    try:
        wire = _AnswerWire.model_validate_json(text)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the answer"
        raise TestWriterError(f"test-writer answer is not the requested JSON ({where}: "
                              f"{err['msg']})") from None
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, case in enumerate(wire.cases):
        fields = case.model_fields_set
        if ("expected" in fields) == ("error" in fields) or "input" not in fields:
            raise TestWriterError(f"test-writer case {i} needs an input and exactly one of "
                                  "expected or error")
        item: dict[str, Any] = {"input": case.input}
        if case.error is not None:
            if not names_an_error(case.error):
                raise TestWriterError(f"test-writer case {i}: the error must be named")
            item["error"] = case.error
        elif "error" in fields:
            raise TestWriterError(f"test-writer case {i}: the error must be a string")
        else:
            item["expected"] = case.expected
        if len(json.dumps(item)) > MAX_CASE_BYTES:
            raise TestWriterError(f"test-writer case {i} is larger than {MAX_CASE_BYTES} bytes")
        key = json.dumps(item["input"], sort_keys=True)
        if key in seen:
            raise TestWriterError(f"test-writer case {i} repeats the input of an earlier case")
        seen.add(key)
        items.append(item)
    if len(items) < min_cases:
        raise TestWriterError(f"test-writer answer has {len(items)} case(s); "
                              f"{min_cases} needed")
    notes: list[str] = []
    in_schema, out_schema = wire.input_schema, wire.output_schema
    if not _schemas_fit(items, in_schema, out_schema):
        notes.append("the test writer's schemas disagree with its own cases: no property checks")
        in_schema = out_schema = None
    return WrittenTests(items, in_schema, out_schema, notes)


def _schemas_fit(items: Sequence[Mapping[str, Any]], in_schema: dict[str, Any] | None,
                 out_schema: dict[str, Any] | None) -> bool:
    import jsonschema

    try:
        for schema in (in_schema, out_schema):
            if schema is not None:
                jsonschema.Draft202012Validator.check_schema(schema)
        for item in items:
            if in_schema is not None and "expected" in item:
                jsonschema.Draft202012Validator(in_schema).validate(item["input"])
            if out_schema is not None and "expected" in item:
                jsonschema.Draft202012Validator(out_schema).validate(item["expected"])
    except (jsonschema.ValidationError, jsonschema.SchemaError, RecursionError):
        return False
    return True


# -- examples in the task -----------------------------------------------------------------

_ARROW = re.compile(r"\s*(?:->|=>|→|⇒)\s*")
_ERROR = re.compile(r"error\s*:?\s*", re.I)
_DECODER = json.JSONDecoder()


def examples_from_task(task: str, limit: int = MAX_CASES) -> list[dict[str, Any]]:
    """``INPUT -> OUTPUT`` examples (JSON on both sides) written in the task, as cases."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    i = 0
    while i < len(task) and len(found) < limit:
        if task[i] not in '{["-0123456789' or (i and (task[i - 1].isalnum() or task[i - 1] in "_.")):
            i += 1
            continue
        left = _value_at(task, i)
        if left is None:
            i += 1
            continue
        value, end = left
        arrow = _ARROW.match(task, end)
        if arrow is None:
            i = end if end > i else i + 1
            continue
        j = arrow.end()
        item: dict[str, Any] | None = None
        err = _ERROR.match(task, j)
        if err is not None:
            right = _value_at(task, err.end())
            if right is not None and isinstance(right[0], str) and names_an_error(right[0]):
                item, j = {"input": value, "error": right[0]}, right[1]
        else:
            right = _value_at(task, j)
            # "version 1.2 -> 3 words" is prose, not an example: a bare number followed by a
            # word is a quantity
            if right is not None and not (_is_number(right[0]) and re.match(
                    r"\s*[^\W\d_]", task[right[1]:right[1] + 40])):
                item, j = {"input": value, "expected": right[0]}, right[1]
        if item is not None:
            key = json.dumps(item["input"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                found.append(item)
        i = max(j, i + 1)
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_at(text: str, i: int) -> tuple[Any, int] | None:
    try:
        value, end = _DECODER.raw_decode(text, i)
    except json.JSONDecodeError:
        return None
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value, end


# -- property checks from the schemas -----------------------------------------------------

def property_cases(tool_id: str, input_schema: dict[str, Any] | None,
                   output_schema: dict[str, Any] | None, known_inputs: Iterable[Any] = (),
                   count: int = PROPERTY_INPUTS) -> list[dict[str, Any]]:
    """Generated inputs, each with the output schema as its expectation; the same every run
    for the same tool (the generator is seeded by the tool's name and the schemas)."""
    if input_schema is None or output_schema is None:
        return []
    import jsonschema

    seed = hashlib.sha256(json.dumps([tool_id, input_schema, output_schema],
                                     sort_keys=True).encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))
    validator = jsonschema.Draft202012Validator(input_schema)
    seen = {json.dumps(x, sort_keys=True) for x in known_inputs}
    cases: list[dict[str, Any]] = []
    for _ in range(count * 4):
        if len(cases) >= count:
            break
        try:
            value = generate(input_schema, rng)
        except _CannotGenerate:
            return cases
        key = json.dumps(value, sort_keys=True)
        if key in seen or not validator.is_valid(value):
            continue
        seen.add(key)
        cases.append({"input": value, "schema": output_schema})
    return cases


class _CannotGenerate(Exception):
    pass


def generate(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value for the common JSON Schema keywords (types, enum, const, bounds, properties,
    items, anyOf/oneOf); anything else cannot be generated."""
    if depth > 6 or not isinstance(schema, dict):
        raise _CannotGenerate
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return generate(rng.choice(schema[key]), rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice([k for k in kind if k != "null"] or kind)
    if kind == "integer":
        lo, hi = _bounds(schema, -1000, 1000)
        return rng.randint(int(lo), int(hi))
    if kind == "number":
        lo, hi = _bounds(schema, -1000.0, 1000.0)
        return round(rng.uniform(lo, hi), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "string":
        lo = int(schema.get("minLength", 0))
        hi = max(lo, min(int(schema.get("maxLength", lo + 12)), lo + 12))
        if "pattern" in schema or "format" in schema:
            raise _CannotGenerate
        alphabet = "abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
    if kind == "array":
        lo = int(schema.get("minItems", 0))
        hi = max(lo, min(int(schema.get("maxItems", lo + 5)), lo + 5))
        return [generate(schema.get("items", {"type": "integer"}), rng, depth + 1)
                for _ in range(rng.randint(lo, hi))]
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        out = {}
        for name, sub in props.items():
            if name in required or rng.random() < 0.5:
                out[name] = generate(sub, rng, depth + 1)
        if not required <= set(out):
            raise _CannotGenerate
        return out
    raise _CannotGenerate


def _bounds(schema: Mapping[str, Any], lo: float, hi: float) -> tuple[float, float]:
    try:
        if "minimum" in schema:
            lo = float(schema["minimum"])
        elif "exclusiveMinimum" in schema:
            lo = float(schema["exclusiveMinimum"]) + 1
        if "maximum" in schema:
            hi = float(schema["maximum"])
        elif "exclusiveMaximum" in schema:
            hi = float(schema["exclusiveMaximum"]) - 1
    except (TypeError, ValueError):
        raise _CannotGenerate from None
    if not lo <= hi or abs(lo) > 1e15 or abs(hi) > 1e15:
        raise _CannotGenerate
    return lo, hi


# -- differential checks against a reference tool ----------------------------------------

def differential_cases(reference: str, call: Callable[[Any], Any],
                       inputs: Iterable[Any]) -> list[dict[str, Any]]:
    """The reference tool's outputs on `inputs` as expected values; inputs it refuses are
    left out (the error wording of two tools need not agree)."""
    from .errors import SandboxError

    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for value in inputs:
        key = json.dumps(value, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            output = call(value)
        except SandboxError:
            continue
        cases.append({"input": value, "expected": output, "name": f"same as {reference}"})
    return cases
