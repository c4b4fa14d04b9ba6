"""Prompts for creating and mutating tools, and parsing the model's answer into files.

What a mutating model sees is deliberately limited: the task, the parent's source and its
*visible* tests, and the inputs that failed. Hidden cases never enter a prompt (nor a
repair message: `redact_hidden` scrubs their values from build or test errors), so a model
cannot fit a tool to the cases that judge it; the independent cases of `independent.py` are
hidden cases too.

Everything in a prompt that a model, a tool or a user wrote (the task, other tools'
descriptions, sources, cases, compiler output, a tool's stderr) is fenced as data with an
unguessable boundary (`ouroboros.capabilities.llm.untrusted.fence`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.llm.untrusted import FENCE_RULE, fence

from .spec import LANGUAGES

#: Repair rounds after a failed answer (here, not in authoring.py, so the CLI can show the
#: default without importing the author and its pydantic models).
DEFAULT_MAX_REPAIRS = 2

SYSTEM_PROMPT = """\
You write small, correct tools that run in a WebAssembly sandbox.

Contract: the program reads ONE JSON value from standard input and writes ONE JSON value to
standard output. On bad input it writes a short message to standard error and exits with a
non-zero status. There are no files, no network, no environment variables and no clock.
Python tools use only the standard library.

Answer with complete files, each in a fenced code block whose info string is the file path:

```json meta.json
{"name": "<the tool name given>", "description": "<one sentence: what it does>", "language": "python"}
```
```python src/main.py
import json, sys
data = json.load(sys.stdin)
...
json.dump(result, sys.stdout)
```
```json tests/cases.json
[{"input": <JSON>, "expected": <JSON>}, {"input": <JSON>, "error": "<words of the stderr message>"}]
```

Write at least {min_cases} test cases, including an edge case; an "error" case names the error
with words of its message ("value must be a number"). Your cases are not the only ones: the
tool is also judged by cases you do not see. Nothing outside code blocks is used.

""" + FENCE_RULE + "\n"


def system_prompt(min_cases: int = 3) -> str:
    return SYSTEM_PROMPT.replace("{min_cases}", str(min_cases))

# A path the parser accepts: the metadata file, or a file under src/ or tests/.
_PATH = r"(?:meta\.json|(?:src|tests)/[A-Za-z0-9_.\-/]+)"
_PATH_RE = re.compile(rf"(?<![\w/.]){_PATH}(?![\w/])")
_FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class AnswerFormatError(ValueError):
    """The model's answer held no usable file blocks."""


@dataclass(frozen=True)
class FailingCase:
    """An input the current tool got wrong, as shown to the model."""

    input: Any
    problem: str
    expected: Any = None

    def render(self) -> str:
        text = f"- input: {json.dumps(self.input)}\n  problem: {self.problem[:500]}"
        if self.expected is not None:
            text += f"\n  expected: {json.dumps(self.expected)}"
        return text


def parse_files(answer: str) -> dict[str, str]:
    """Files from fenced code blocks labelled with a path.

    The path may be in the info string (```python src/main.py, ```json title=meta.json,
    ```src/main.py) or on the line just before the fence (**src/main.py**, ### `meta.json`,
    File: tests/cases.json). Later blocks for the same path win, so a model that corrects
    itself mid-answer is taken at its last word.

    Raises:
        AnswerFormatError: no block names a path we accept.
    """
    lines = answer.splitlines()
    files: dict[str, str] = {}
    i = 0
    previous: list[str] = []
    while i < len(lines):
        m = _FENCE_RE.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = [lines[i]]
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info")
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE_RE.match(lines[i])
            if close and close.group("fence")[0] == fence[0] and len(close.group("fence")) >= len(
                fence
            ) and not close.group("info").strip():
                break
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end of an unterminated block)
        path = _path_in(info) or (_path_in(previous[0]) if previous else None)
        previous = []
        if path:
            files[path] = "\n".join(body) + "\n"
    if not files:
        raise AnswerFormatError(
            "no file blocks found: put each file in a fenced code block whose info string is "
            "its path, e.g. ```python src/main.py"
        )
    return files


def _path_in(text: str) -> str | None:
    m = _PATH_RE.search(text)
    if not m:
        return None
    path = m.group(0).rstrip(".")
    return None if ".." in path.split("/") else path


def render_file(path: str, content: str) -> str:
    lang = {"py": "python", "json": "json", "c": "c", "wat": "wat", "zig": "zig", "rs": "rust"}
    ext = path.rsplit(".", 1)[-1]
    fence = "````" if "```" in content else "```"
    return f"{fence}{lang.get(ext, '')} {path}\n{content.rstrip()}\n{fence}"


def create_prompt(
    task: str, name: str, language: str, similar: Sequence[tuple[str, str]] = ()
) -> str:
    text = (f"Write a new tool that does what this specification describes.\n\n"
            f"{fence(task.strip(), 'specification')}\n\nTool name: {name}\n"
            f"Language: {language} (source file {LANGUAGES.get(language, 'src/main.py')}; "
            "compiled to wasm32-wasi)\n")
    if similar:
        listing = "".join(f"- {tool_id}: {desc[:300]}\n" for tool_id, desc in similar)
        text += ("\nExisting tools that are related (do not duplicate them):\n"
                 f"{fence(listing.rstrip(), 'existing tools')}\n")
    return text


def mutate_prompt(
    task: str,
    parent_id: str,
    description: str,
    language: str,
    sources: Mapping[str, str],
    visible_cases: Sequence[Mapping[str, Any]],
    has_hidden: bool,
    failing: Sequence[FailingCase] = (),
    name: str | None = None,
) -> str:
    text = (
        f"Change the existing tool `{parent_id}` as this request describes:\n\n"
        f"{fence(task.strip(), 'change request')}\n\n"
        f"Current description:\n{fence(description, 'current description')}\n"
        f"Language: {language}\n"
    )
    if name and name != parent_id:
        text += f"The new tool's name: {name}\n"
    files = "\n\n".join(render_file(p, c) for p, c in sorted(sources.items()))
    text += f"\nCurrent files:\n\n{fence(files, 'current files')}"
    cases = render_file("tests/cases.json", json.dumps(list(visible_cases), indent=1))
    text += f"\n\nCurrent tests (visible):\n\n{fence(cases, 'current tests')}"
    if has_hidden:
        text += (
            "\n\nThe tool also has hidden tests that you cannot see; they still apply, so keep "
            "the existing behaviour except where the request asks for a change."
        )
    text += ("\n\nEvery current test stays: the new version must pass them all. A current "
             "test whose expected value the request changes may be given again with the new "
             "value; a person reviews every such change before the new version is used.")
    if failing:
        listing = "\n".join(f.render() for f in failing)
        text += f"\n\nThese inputs currently fail:\n{fence(listing, 'failing inputs')}"
    text += (
        "\n\nReturn meta.json, the complete new source and tests/cases.json (new cases for "
        "the change; current ones you leave out are kept as they are)."
    )
    return text


MAX_REPAIR_DETAIL = 4000


def repair_prompt(reason: str, detail: str) -> str:
    """The rejection, fenced (compiler output and a tool's stderr are untrusted) and bounded."""
    shown = detail.strip()
    if len(shown) > MAX_REPAIR_DETAIL:
        shown = shown[:MAX_REPAIR_DETAIL] + "\n...(cut)"
    return (
        f"That answer was rejected ({reason}):\n\n{fence(shown, 'rejection')}\n\n"
        "Fix the problem and return the complete files again, in the same format."
    )


def redact_hidden(detail: str, hidden_cases: Iterable[Mapping[str, Any]]) -> str:
    """Remove any hidden case's input or expected value from an error message."""
    for case in hidden_cases:
        for key in ("input", "expected", "error"):
            if key not in case:
                continue
            value = case[key]
            forms = {json.dumps(value), json.dumps(value, sort_keys=True), repr(value), str(value)}
            if isinstance(value, str):
                forms.add(value)
            for form in sorted(forms, key=len, reverse=True):
                if len(form) >= 3:  # "1" or "[]" would blank unrelated text
                    detail = detail.replace(form, "<hidden>")
    return detail
