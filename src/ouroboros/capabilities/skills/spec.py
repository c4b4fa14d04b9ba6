"""The tool format: a spec (name, description, language, files) and its test cases.

A hand-written tool is a directory::

    meta.json          {"name": ..., "description": ..., "language": ..., "runtime"?: ...,
                        "input_schema"?: {...}, "output_schema"?: {...}}
    src/main.py        (or main.c, main.zig, main.wat, main.rs)
    tests/cases.json   [{"input": JSON, "expected": JSON, "hidden"?: bool}, ...]

A case expects a JSON value (`expected`), an error whose message contains a phrase
(`error`, which must name the error: "value must be a number", not ""), or an output that
validates against a JSON Schema (`schema`; a property check, see `evidence.py`). Its
`source` says who wrote it: a hand-written tool's cases are the operator's; an LLM-made
tool's are marked by the authoring code, never by the model (see `evidence.SOURCES`).
meta.json may grant `"capabilities": ["clock"]` (the real wall clock; every other tool sees
a fixed one); it is part of the version and shown in review. It may declare
`"input_schema"` and `"output_schema"` (JSON Schema); without them they are inferred from the
cases (see `schemas.py`), and every run is validated against them.

Everything is validated here, on the way in, so the builders and the store only ever see a
well-formed spec.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .building.sources import MAX_FILE_BYTES, read_tree
from .errors import MalformedTool

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LANGUAGES: dict[str, str] = {
    "python": "src/main.py",
    "c": "src/main.c",
    "zig": "src/main.zig",
    "wat": "src/main.wat",
    "rust": "src/main.rs",
}
CASES_PATH = "tests/cases.json"
MAX_FILES = 64
#: Who wrote a case. "operator" (the default) is a person: hand-written tools, `prove`.
CASE_SOURCES = ("operator", "author", "task", "test_writer", "property", "differential")
#: What a tool may be granted beyond the deterministic sandbox.
CAPABILITIES = ("clock",)
#: Words that say nothing about which error happened: an `error` of only these (or of fewer
#: than four characters) would pass for any failure, a tool that always exits 1 included.
_GENERIC_ERROR_WORDS = frozenset({
    "error", "errors", "err", "exception", "traceback", "fail", "failed", "failure", "exit",
    "exited", "stderr", "most", "recent", "call", "last", "the", "an", "a", "raised", "status",
})


@dataclass(frozen=True)
class TestCase:
    """One input and the JSON the tool must print for it, or an error it must raise.

    `expected_error` (a substring of stderr) lets a tool's tests pin its bad-input behaviour.
    Hidden cases gate a version but are never shown to an LLM that mutates the tool.
    """

    input: Any
    expected: Any = None
    expected_error: str | None = None
    hidden: bool = False
    name: str = ""
    index: int = 0
    schema: dict[str, Any] | None = None
    source: str = "operator"

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else f"case {self.index}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input}
        if self.expected_error is not None:
            out["error"] = self.expected_error
        elif self.schema is not None:
            out["schema"] = self.schema
        else:
            out["expected"] = self.expected
        if self.hidden:
            out["hidden"] = True
        if self.name:
            out["name"] = self.name
        if self.source != "operator":
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class ToolSpec:
    """What a tool is before it is built: the unit `SkillStore.add` accepts.

    `files` maps relative POSIX paths (``src/main.py``, ``tests/cases.json``) to bytes.
    `runtime` picks an alternative runtime for a language (``micropython`` for python).
    """

    name: str
    description: str
    language: str
    files: dict[str, bytes] = field(default_factory=dict)
    runtime: str | None = None
    origin: str = "operator"  # "operator" (a person) or "llm:<model>" (see authoring.py)
    capabilities: tuple[str, ...] = ()
    #: Declared by the author (meta.json); None: inferred from the cases (see schemas.py).
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_spec(self)

    @property
    def source_path(self) -> str:
        return LANGUAGES[self.language]

    def cases(self, include_hidden: bool = True) -> list[TestCase]:
        cases = parse_cases(self.files[CASES_PATH])
        return [c for c in cases if include_hidden or not c.hidden]


def hidden_character(description: str) -> str | None:
    """Why a new version's description cannot be shown as it is, or None: a control
    character (a terminal escape; tab and newline are fine), a bidi control, or an
    invisible one (zero-width, soft hyphen, BOM: Unicode's Cf), or a lone surrogate. The
    description is printed by `ouro tool list` and search, and read by agents choosing a
    tool; such a character hides or reorders what they see."""
    for i, ch in enumerate(description):
        kind = unicodedata.category(ch)
        if (kind == "Cc" and ch not in "\t\n") or kind in ("Cf", "Cs", "Zl", "Zp"):
            what = unicodedata.name(ch, "a control character")
            return (f"the description has {what} (U+{ord(ch):04X}) at character {i}: control, "
                    "bidi and invisible characters are not allowed in a description (they "
                    "hide or reorder what `ouro tool list` and search show)")
    return None


def validate_spec(spec: ToolSpec) -> None:
    """Raise `MalformedTool` naming the first thing wrong with a spec."""
    if not NAME_RE.fullmatch(spec.name):  # match(): "$" also matched before a final "\n"
        raise MalformedTool(
            f"tool name {spec.name!r} is invalid: use lowercase letters, digits and '_', "
            "starting with a letter (at most 64 characters)"
        )
    if not spec.description.strip():
        raise MalformedTool(f"tool {spec.name!r} has no description: say what it does")
    if spec.language not in LANGUAGES:
        raise MalformedTool(
            f"language {spec.language!r} is not supported; use one of {', '.join(LANGUAGES)}"
        )
    if len(spec.files) > MAX_FILES:
        raise MalformedTool(f"tool has {len(spec.files)} files; at most {MAX_FILES} allowed")
    for path, data in spec.files.items():
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or path != str(pure):
            raise MalformedTool(f"file path {path!r} must be relative, normalised, without '..'")
        if pure.parts[0] not in ("src", "tests"):
            raise MalformedTool(f"file {path!r} must live under src/ or tests/")
        if not isinstance(data, bytes):
            raise MalformedTool(f"file {path!r} must be bytes")
        if len(data) > MAX_FILE_BYTES:
            raise MalformedTool(f"file {path!r} is larger than {MAX_FILE_BYTES} bytes")
    if spec.origin != "operator" and not re.fullmatch(r"llm:[^\s]{1,200}", spec.origin):
        raise MalformedTool(f"origin {spec.origin[:80]!r} must be 'operator' or 'llm:<model>'")
    unknown = sorted(set(spec.capabilities) - set(CAPABILITIES))
    if unknown:
        raise MalformedTool(f"unknown capabilities {unknown}; a tool may ask for "
                            f"{', '.join(CAPABILITIES)}")
    for path in spec.files:
        parents = path.split("/")
        for i in range(1, len(parents)):
            if "/".join(parents[:i]) in spec.files:
                raise MalformedTool(f"{'/'.join(parents[:i])!r} is both a file and a folder")
    if spec.input_schema is not None or spec.output_schema is not None:
        from .schemas import check_declared

        for what, schema in (("input_schema", spec.input_schema),
                             ("output_schema", spec.output_schema)):
            if schema is not None:
                check_declared(schema, what)
    if spec.source_path not in spec.files:
        raise MalformedTool(f"a {spec.language} tool needs {spec.source_path}")
    if CASES_PATH not in spec.files:
        raise MalformedTool(f"tool needs {CASES_PATH}: a list of {{input, expected}} cases")
    if not parse_cases(spec.files[CASES_PATH]):
        raise MalformedTool(f"{CASES_PATH} has no cases: a tool needs at least one test")


def parse_cases(raw: bytes) -> list[TestCase]:
    """Parse tests/cases.json, naming the bad case when one is malformed."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedTool(f"{CASES_PATH} is not valid JSON: {e}") from e
    if not isinstance(data, list):
        raise MalformedTool(f"{CASES_PATH} must be a JSON list of cases")
    cases: list[TestCase] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "input" not in item:
            raise MalformedTool(f"{CASES_PATH} case {i} must be an object with an 'input'")
        kinds = [k for k in ("expected", "error", "schema") if k in item]
        if len(kinds) != 1:
            raise MalformedTool(
                f"{CASES_PATH} case {i} needs exactly one of 'expected', 'error' or 'schema'"
            )
        unknown = set(item) - {"input", "expected", "error", "schema", "hidden", "name",
                               "source"}
        if unknown:
            raise MalformedTool(f"{CASES_PATH} case {i} has unknown keys {sorted(unknown)}")
        hidden = item.get("hidden", False)
        if not isinstance(hidden, bool):
            raise MalformedTool(f"{CASES_PATH} case {i}: 'hidden' must be true or false")
        error = item.get("error")
        if "error" in item:
            if not isinstance(error, str):
                raise MalformedTool(f"{CASES_PATH} case {i}: 'error' must be a string")
            if not names_an_error(error):
                raise MalformedTool(
                    f"{CASES_PATH} case {i}: 'error' must name the error with a phrase of its "
                    f"message (e.g. \"value must be a number\"), not {error[:40]!r}: an empty "
                    "or generic one passes for any failure")
        schema = item.get("schema")
        if "schema" in item and not _valid_schema(schema):
            raise MalformedTool(f"{CASES_PATH} case {i}: 'schema' must be a JSON Schema object")
        source = item.get("source", "operator")
        if source not in CASE_SOURCES:
            raise MalformedTool(f"{CASES_PATH} case {i}: 'source' must be one of "
                                f"{', '.join(CASE_SOURCES)}")
        cases.append(
            TestCase(
                input=item["input"],
                expected=item.get("expected"),
                expected_error=error,
                hidden=hidden,
                name=str(item.get("name", "")),
                index=i,
                schema=schema,
                source=source,
            )
        )
    return cases


def names_an_error(text: str) -> bool:
    """Whether an `error` expectation says which error: at least four characters and one
    word that is not generic ("error", "failed", "traceback"...)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return len(text.strip()) >= 4 and any(w not in _GENERIC_ERROR_WORDS for w in words)


def _valid_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError:
        return False
    return True


def load_tool_dir(path: Path) -> ToolSpec:
    """Read a hand-written tool directory into a `ToolSpec`, never following a link.

    Raises:
        MalformedTool: the directory, its meta.json or its files do not follow the format,
            or it holds a symlink (itself included), a hard-linked file, a device, a FIFO
            or a socket (see `building.sources.read_tree`).
    """
    files = read_tree(Path(path))
    meta_path = path / "meta.json"
    raw = files.pop("meta.json", None)
    if raw is None:
        raise MalformedTool(f"{path} has no meta.json with name, description and language")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise MalformedTool(f"{meta_path} is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedTool(f"{meta_path} is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise MalformedTool(f"{meta_path} must be a JSON object")
    for key in ("name", "description", "language"):
        if not isinstance(meta.get(key), str):
            raise MalformedTool(f"{meta_path} needs a string {key!r}")
    runtime = meta.get("runtime")
    if runtime is not None and not isinstance(runtime, str):
        raise MalformedTool(f"{meta_path}: 'runtime' must be a string")
    capabilities = meta.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise MalformedTool(f"{meta_path}: 'capabilities' must be a list of names")
    for key in ("input_schema", "output_schema"):
        if key in meta and not isinstance(meta[key], dict):
            raise MalformedTool(f"{meta_path}: {key!r} must be a JSON Schema object")
    return ToolSpec(
        name=meta["name"],
        description=meta["description"],
        language=meta["language"],
        files=files,
        runtime=runtime,
        capabilities=tuple(sorted(set(capabilities))),
        input_schema=meta.get("input_schema"),
        output_schema=meta.get("output_schema"),
    )


def without_hidden(raw: bytes) -> bytes:
    """tests/cases.json as an LLM may see it: the same cases, hidden ones removed."""
    parse_cases(raw)
    items = json.loads(raw)
    if not any(item.get("hidden") for item in items):
        return raw
    visible = [item for item in items if not item.get("hidden")]
    return (json.dumps(visible, indent=2, ensure_ascii=False) + "\n").encode()
