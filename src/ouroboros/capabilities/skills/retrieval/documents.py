"""The text a tool is indexed by: more than its one-line description.

A user asks for what a tool does in their own words; the description alone often lacks
them. The indexed document also carries the names of the tool's input and output fields
and a few of its visible test inputs (their keys and short string values are the
vocabulary a caller uses), and, when an LLM is configured, a handful of queries the LLM
wrote for the tool (synthetic.py). Hidden test cases never enter an index: search results
are shown to users and models.

The first line stays `name words: description`, the display text of a hit, so callers that
show `hit.text` see what they always saw.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 160
MAX_FIELDS = 24
MAX_SYNTHETIC = 8
MAX_SYNTHETIC_CHARS = 160
MAX_DESCRIPTION_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class ToolDocument:
    """What retrieval knows about one tool version."""

    name: str
    description: str
    input_fields: Sequence[str] = ()
    output_fields: Sequence[str] = ()
    examples: Sequence[str] = ()
    synthetic_queries: Sequence[str] = field(default=())


def name_words(name: str) -> str:
    """`csv_to_json` → "csv to json"; `ChaDri.change_drink` → "Cha Dri change drink"."""
    spaced = _CAMEL.sub(" ", name)
    return " ".join(re.split(r"[\s_\-./:]+", spaced)).strip()


def clean(text: str, limit: int) -> str:
    """One line of plain text: no control or invisible characters, bounded length."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)  # zero-width and direction marks hide nothing
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split())[:limit]


def tool_text(name: str, description: str) -> str:
    """The display line of a tool: its name (as words) and its description."""
    return f"{name_words(name)}: {clean(description, MAX_DESCRIPTION_CHARS)}"


def document_text(doc: ToolDocument) -> str:
    """The full indexed text: the display line, then one line per extra field."""
    lines = [tool_text(doc.name, doc.description)]
    inputs = _fields(doc.input_fields)
    if inputs:
        lines.append("input: " + ", ".join(inputs))
    outputs = _fields(doc.output_fields)
    if outputs:
        lines.append("output: " + ", ".join(outputs))
    examples = [clean(e, MAX_EXAMPLE_CHARS) for e in doc.examples[:MAX_EXAMPLES]]
    examples = [e for e in examples if e]
    if examples:
        lines.append("examples: " + " | ".join(examples))
    asked = [clean(q, MAX_SYNTHETIC_CHARS) for q in doc.synthetic_queries[:MAX_SYNTHETIC]]
    asked = [q for q in asked if q]
    if asked:
        lines.append("asked as: " + " | ".join(asked))
    return "\n".join(lines)


def display_line(text: str) -> str:
    """The first line of an indexed text (what a hit shows)."""
    return text.split("\n", 1)[0]


def _fields(names: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for n in names:
        words = clean(name_words(str(n)), 64)
        if words and words not in seen:
            seen.append(words)
        if len(seen) >= MAX_FIELDS:
            break
    return seen


def example_text(value: Any) -> str:
    """A test input as a caller would write it: keys and short scalar values."""
    parts: list[str] = []

    def walk(v: Any, depth: int) -> None:
        if depth > 3 or len(parts) > 24:
            return
        if isinstance(v, Mapping):
            for k, item in list(v.items())[:12]:
                parts.append(str(k))
                walk(item, depth + 1)
        elif isinstance(v, list | tuple):
            for item in list(v)[:4]:
                walk(item, depth + 1)
        elif isinstance(v, str):
            parts.append(v[:40])
        elif isinstance(v, bool | int | float) and not isinstance(v, bool):
            parts.append(json.dumps(v))

    walk(value, 0)
    return " ".join(parts)


def keys_of(values: Iterable[Any]) -> list[str]:
    """Top-level keys of the object values, in first-seen order."""
    out: list[str] = []
    for v in values:
        if isinstance(v, Mapping):
            out.extend(str(k) for k in v if str(k) not in out)
    return out


def document_for_version(version: Any, synthetic: Sequence[str] = ()) -> ToolDocument:
    """The document of a stored `ToolVersion`, from its visible test cases only."""
    cases = version.cases(include_hidden=False)
    inputs = [c.input for c in cases]
    outputs = [c.expected for c in cases if c.expected is not None]
    return ToolDocument(
        name=version.tool_id,
        description=version.description,
        input_fields=keys_of(inputs),
        output_fields=keys_of(outputs),
        examples=[t for t in (example_text(i) for i in inputs) if t],
        synthetic_queries=tuple(synthetic),
    )
