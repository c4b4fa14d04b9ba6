"""A tool's input and output JSON Schemas: given by its author, or inferred from its cases.

A hand-written tool may declare ``input_schema`` / ``output_schema`` in its meta.json; they
are part of the version (and of its fingerprint). When it declares none, the schemas are
**inferred** from the tool's own test cases by the pure functions below, recorded in the
version's meta.json and skill patch at registration, and never enter the fingerprint: they
are derived from the cases, which the fingerprint already covers. A version registered
before schemas existed has none recorded; it gets the inferred ones when it is loaded.

Inference is *correct* (every case's input validates against the inferred input schema,
every expected output against the output schema) and *conservative* (it refuses as little
as the evidence allows, because a refused input never reaches a tool that might handle it):

- a place is constrained only when at least three values were seen there (fewer tests say
  too little: a doubler tested on 2 may well double "ab");
- a place holds the JSON types seen there (integers and fractions are both ``number``);
  a place that took three or more kinds of value is taken to accept any JSON value;
- a type seen at a place only in ``error`` cases is accepted there without constraints (the
  tool's own error message is the documented answer for it, so the schema keeps out of the
  way);
- objects list the keys seen (other keys stay allowed); a key is ``required`` only when at
  least three objects were seen at that place and every one had it;
- arrays constrain their items by what the items were; nothing below depth 4 is constrained;
- no values, lengths, patterns or enums are inferred (nor leaked from hidden cases);
- an inferred output schema is shallow (and needs three outputs too): the output's type(s),
  and for an object the keys seen, unconstrained (a wrong output type is a tool failure; a rare key value is not).

Everything here is pure; validation uses the kernel's one validator (`schema_errors`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import MalformedTool
from .spec import TestCase

Source = Literal["author", "inferred"]
KINDS = ("null", "boolean", "number", "string", "array", "object")
#: A declared schema's canonical size cap: a schema is read on every call and shown to agents.
MAX_SCHEMA_BYTES = 64 * 1024
#: Places deeper than this are left unconstrained by inference.
MAX_DEPTH = 4
#: An object place with more distinct keys than this is a map: its keys are not listed.
MAX_KEYS = 64
#: How many values a place needs before inference constrains it (and how many objects must
#: all show a key before it is required).
EVIDENCE = 3
#: How many kinds of value make a place "any JSON value".
ANY_KINDS = 3
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class ToolSchemas:
    """The schemas a version runs under, and where each came from."""

    input: dict[str, Any]
    output: dict[str, Any]
    source: dict[str, Source] = field(default_factory=lambda: {"input": "inferred",
                                                                "output": "inferred"})

    def to_meta(self) -> dict[str, Any]:
        """The meta.json (and skill patch) fields."""
        return {"input_schema": self.input, "output_schema": self.output,
                "schema_source": dict(self.source)}


# -- inference ------------------------------------------------------------------------------
def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


@dataclass
class _Place:
    """What the values seen at one place of a document had in common."""

    seen: Counter[str] = field(default_factory=Counter)
    loose: set[str] = field(default_factory=set)  # kinds seen only in error cases
    keys: dict[str, _Place] = field(default_factory=dict)
    key_counts: Counter[str] = field(default_factory=Counter)
    items: _Place | None = None

    def add(self, value: Any, depth: int, widen: bool) -> None:
        kind = kind_of(value)
        if widen and kind not in self.seen:
            self.loose.add(kind)
        self.seen[kind] += 1
        if kind in self.loose or depth >= MAX_DEPTH:
            return
        if kind == "object":
            for key, item in value.items():
                self.key_counts[key] += 1
                if len(self.keys) < MAX_KEYS or key in self.keys:
                    self.keys.setdefault(key, _Place()).add(item, depth + 1, widen)
        elif kind == "array":
            for item in value:
                if self.items is None:
                    self.items = _Place()
                self.items.add(item, depth + 1, widen)

    def render(self, depth: int) -> dict[str, Any]:
        kinds = [k for k in KINDS if k in self.seen]
        strict = [k for k in kinds if k not in self.loose and k != "null"]
        if (not kinds or len(strict) >= ANY_KINDS or depth >= MAX_DEPTH
                or sum(self.seen.values()) < EVIDENCE):
            return {}
        schema: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        if "object" in strict and len(self.key_counts) <= MAX_KEYS:
            schema["properties"] = {k: self.keys[k].render(depth + 1)
                                    for k in sorted(self.keys)}
            objects = self.seen["object"]
            required = sorted(k for k, n in self.key_counts.items() if n == objects)
            if objects >= EVIDENCE and required:
                schema["required"] = required
        if "array" in strict and self.items is not None:
            items = self.items.render(depth + 1)
            if items:
                schema["items"] = items
        return schema


def infer_input_schema(cases: Sequence[TestCase]) -> dict[str, Any]:
    """The input schema the cases support (every case's input validates against it)."""
    place = _Place()
    for case in sorted(cases, key=lambda c: c.expected_error is not None):
        place.add(case.input, 0, widen=case.expected_error is not None)
    return place.render(0)


def infer_output_schema(cases: Sequence[TestCase]) -> dict[str, Any]:
    """The shallow output schema the cases support: every expected output validates, and
    so does any output of a ``schema`` case's declared type(s)."""
    kinds: set[str] = set()
    keys: set[str] = set()
    outputs = [c for c in cases if c.expected_error is None]
    if len(outputs) < EVIDENCE:
        return {}
    for case in outputs:
        if case.schema is not None:
            declared = case.schema.get("type")
            names = [declared] if isinstance(declared, str) else declared
            if not isinstance(names, list) or not names or not all(n in KINDS or n == "integer"
                                                                  for n in names):
                return {}  # a property check without a plain type: any output may pass it
            kinds.update("number" if n == "integer" else n for n in names)
            continue
        kind = kind_of(case.expected)
        kinds.add(kind)
        if kind == "object":
            keys.update(case.expected)
    ordered = [k for k in KINDS if k in kinds]
    if not ordered or len([k for k in ordered if k != "null"]) >= ANY_KINDS:
        return {}
    schema: dict[str, Any] = {"type": ordered[0] if len(ordered) == 1 else ordered}
    if "object" in kinds and keys and len(keys) <= MAX_KEYS:
        schema["properties"] = {k: {} for k in sorted(keys)}
    return schema


# -- declared schemas -----------------------------------------------------------------------
def check_declared(schema: Any, what: str) -> dict[str, Any]:
    """A schema an author declared, checked: a JSON Schema (2020-12) object, under the size
    cap, resolvable offline. Returns it.

    Raises:
        MalformedTool: naming what is wrong.
    """
    from ouroboros.kernel import canonical_bytes

    if not isinstance(schema, dict):
        raise MalformedTool(f"{what} must be a JSON Schema object")
    try:
        size = len(canonical_bytes(schema))
    except (TypeError, ValueError, RecursionError) as e:
        raise MalformedTool(f"{what} is not plain JSON: {_short(str(e))}") from None
    if size > MAX_SCHEMA_BYTES:
        raise MalformedTool(f"{what} is {size} bytes; at most {MAX_SCHEMA_BYTES} allowed")
    try:
        from ouroboros.kernel.types import schema_errors

        schema_errors(schema, None)  # the metaschema check, then compiled with offline refs
    except Exception as e:  # the validator's own error types differ by library
        raise MalformedTool(f"{what} is not a valid JSON Schema: {_short(str(e))}") from None
    return schema


def schemas_for(cases: Sequence[TestCase], input_schema: dict[str, Any] | None = None,
                output_schema: dict[str, Any] | None = None) -> ToolSchemas:
    """The schemas a new version is registered with: the declared ones, else inferred."""
    return ToolSchemas(
        input=input_schema if input_schema is not None else infer_input_schema(cases),
        output=output_schema if output_schema is not None else infer_output_schema(cases),
        source={"input": "author" if input_schema is not None else "inferred",
                "output": "author" if output_schema is not None else "inferred"})


def schemas_of(meta: Mapping[str, Any], cases: Iterable[TestCase]) -> ToolSchemas:
    """The schemas of a stored version: those recorded in its meta, else inferred from its
    cases (versions registered before schemas were recorded)."""
    recorded = meta.get("schema_source")
    if isinstance(recorded, dict) and isinstance(meta.get("input_schema"), dict) \
            and isinstance(meta.get("output_schema"), dict):
        source: dict[str, Source] = {
            k: "author" if recorded.get(k) == "author" else "inferred"
            for k in ("input", "output")}
        return ToolSchemas(meta["input_schema"], meta["output_schema"], source)
    return schemas_for(list(cases))


def declared(meta: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The author-declared schemas recorded in a version's meta (None where inferred)."""
    source = meta.get("schema_source") or {}
    return (meta.get("input_schema") if source.get("input") == "author" else None,
            meta.get("output_schema") if source.get("output") == "author" else None)


# -- checking ---------------------------------------------------------------------------------
#: Compiled validators by schema identity (a version's schemas live as long as the store's
#: cache of it); the schema is kept alive with its validator so an id is never reused.
_compiled: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    hit = _compiled.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import jsonschema_rs  # not `jsonschema`: a run must stay light (the schema was checked
    # against the metaschema when the version was registered, see `check_declared`)

    validator = jsonschema_rs.validator_for(schema, validate_formats=False, offline=True)
    if len(_compiled) > 4096:
        _compiled.clear()
    _compiled[id(schema)] = (schema, validator)
    return validator


def schema_problems(schema: dict[str, Any], value: Any) -> list[str]:
    """Why ``value`` fails ``schema`` (empty when it validates), at most three reasons."""
    if not schema:
        return []  # {} accepts everything: skip the validator
    errors = []
    for error in _validator(schema).iter_errors(value):
        where = "/".join(str(p) for p in error.instance_path) or "(root)"
        errors.append(_short(f"{where}: {error.message}"))
        if len(errors) == 3:
            break
    return errors


def case_problems(cases: Sequence[TestCase], schemas: ToolSchemas) -> list[str]:
    """Where a version's cases contradict its schemas (the registration and gate check).

    Every ``expected``/``schema`` case's input must fit the input schema; so must an
    ``error`` case's when the schema was inferred (inference guarantees it); an ``error``
    case may test an input a declared schema refuses (the refusal is then its answer). Every
    expected output must fit the output schema.
    """
    problems = []
    for case in cases:
        # a hidden case is named by its number only: the validator's message quotes values
        label = f"hidden case {case.index}" if case.hidden else case.label

        def report(found: list[str], what: str, label: str = label,
                   hidden: bool = case.hidden) -> None:
            if found:
                problems.append(f"{label}: {what}" + ("" if hidden else f": {found[0]}"))

        if case.expected_error is None or schemas.source.get("input") == "inferred":
            report(schema_problems(schemas.input, case.input),
                   "its input does not fit input_schema")
        if case.expected_error is None and case.schema is None:
            report(schema_problems(schemas.output, case.expected),
                   "its expected output does not fit output_schema")
    return problems


def _short(text: str) -> str:
    """A validator message, cut: it may quote a huge input."""
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "…"
