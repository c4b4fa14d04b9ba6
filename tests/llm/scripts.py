"""Scripted model answers: the code writer's files and the test writer's JSON."""

from __future__ import annotations

import json
from typing import Any

MICRO = {"language": "python", "runtime": "micropython"}


def code_answer(src: str, cases: Any, description: str = "A tool.", *,
                meta: dict[str, Any] | None = None, prose: str = "Here it is.") -> str:
    """A code-writing answer: meta.json, src/main.py and tests/cases.json blocks."""
    meta_json = json.dumps({"name": "ignored", "description": description, **MICRO,
                            **(meta or {})})
    cases_json = cases if isinstance(cases, str) else json.dumps(cases)
    return (f"{prose}\n```json meta.json\n{meta_json}\n```\n```python src/main.py\n{src}\n```\n"
            f"```json tests/cases.json\n{cases_json}\n```\n")


def writer_answer(cases: list[dict[str, Any]], input_schema: Any = None,
                  output_schema: Any = None) -> str:
    """A test-writing answer (schemas optional)."""
    out: dict[str, Any] = {"cases": cases}
    if input_schema is not None:
        out["input_schema"] = input_schema
    if output_schema is not None:
        out["output_schema"] = output_schema
    return "```json\n" + json.dumps(out) + "\n```"
