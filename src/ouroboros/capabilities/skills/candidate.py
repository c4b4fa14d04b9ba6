"""What a model's answer becomes: a `ToolSpec` whose name, cases and origin are ours.

The model contributes its source files, its description and its own cases; everything that
decides whether the tool is trusted is set here, never taken from the answer: the tool's
name, each case's `source`, the parent's cases (kept exactly), the independent cases, and
the `origin` that marks the code as LLM-made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .evidence import evidence_of
from .governance import MAX_DESCRIPTION_CHARS
from .prompts import AnswerFormatError
from .spec import CAPABILITIES, CASES_PATH, LANGUAGES, ToolSpec, parse_cases


class Unchanged(AnswerFormatError):
    """A mutation's answer that changes nothing."""


def origin_of(model: str) -> str:
    return "llm:" + ("".join(ch for ch in model if ch.isprintable() and not ch.isspace())[:200]
                     or "unknown")


def _case_key(item: Mapping[str, Any]) -> str:
    expectation = {k: item[k] for k in ("expected", "error", "schema") if k in item}
    return json.dumps([item.get("input"), expectation], sort_keys=True)


def spec_from_answer(
    files: dict[str, str],
    name: str,
    fallback_description: str,
    fallback_language: str,
    *,
    origin: str,
    inherited: Sequence[Mapping[str, Any]],
    independent: Sequence[Mapping[str, Any]],
    min_author_cases: int,
    base: Mapping[str, str] | None = None,
    fallback_runtime: str | None = None,
    parent_capabilities: tuple[str, ...] = (),
) -> ToolSpec:
    """A spec from the model's files over `base` (the parent's sources).

    The name is ours, not the model's: a model cannot overwrite another tool by naming it.
    The cases file is ours too: the parent's cases (exact, in order), then the author's, each
    marked ``author`` whatever it claimed, then the independent ones. An author case with
    the input of a visible parent case but another expectation replaces it (a change the
    store sends to review); one that repeats a parent case adds nothing. So an answer that
    changes nothing yields the parent's cases byte for byte.
    """
    meta: dict[str, Any] = {}
    if "meta.json" in files:
        try:
            loaded = json.loads(files["meta.json"])
        except json.JSONDecodeError as e:
            raise AnswerFormatError(f"meta.json is not valid JSON: {e}") from e
        if not isinstance(loaded, dict):
            raise AnswerFormatError("meta.json must be a JSON object")
        meta = loaded
    description = str(meta.get("description") or fallback_description).strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise AnswerFormatError(f"the description is {len(description)} characters; keep it "
                                f"under {MAX_DESCRIPTION_CHARS} (one to three sentences)")
    language = str(meta.get("language") or fallback_language)
    runtime = meta.get("runtime") if isinstance(meta.get("runtime"), str) else fallback_runtime
    capabilities = meta.get("capabilities", list(parent_capabilities))
    if not isinstance(capabilities, list) or not all(
            isinstance(c, str) and c in CAPABILITIES for c in capabilities):
        raise AnswerFormatError(f"meta.json 'capabilities' must be a list drawn from "
                                f"{list(CAPABILITIES)}")
    merged: dict[str, bytes] = {p: c.encode("utf-8") for p, c in (base or {}).items()}
    merged.update({p: c.encode("utf-8") for p, c in files.items() if p.startswith("src/")})
    if language in LANGUAGES and LANGUAGES[language] not in merged:
        raise AnswerFormatError(f"the answer has no {LANGUAGES[language]} block")
    if CASES_PATH not in files:
        raise AnswerFormatError(f"the answer has no {CASES_PATH} block: write at least "
                                f"{min_author_cases} cases")
    parse_cases(files[CASES_PATH].encode("utf-8"))  # names the bad case in the model's JSON
    author = json.loads(files[CASES_PATH])
    own = [c for c in author if "schema" not in c]
    if len(own) < min_author_cases:
        raise AnswerFormatError(f"{CASES_PATH} has {len(own)} case(s) with an expected value "
                                f"or error; write at least {min_author_cases}, including an "
                                "edge case")
    cases: list[dict[str, Any]] = [dict(c) for c in inherited]
    by_input = {json.dumps(c["input"], sort_keys=True): i for i, c in enumerate(cases)
                if not c.get("hidden")}
    seen = {_case_key(c) for c in cases}
    for item in author:
        clean = {k: item[k] for k in ("input", "expected", "error", "schema", "name", "hidden")
                 if k in item}
        clean["source"] = "author"
        key = _case_key(clean)
        if key in seen:
            continue
        seen.add(key)
        at = by_input.pop(json.dumps(clean["input"], sort_keys=True), None)
        if at is not None:
            cases[at] = clean  # a visible parent case expected differently: reviewed
        else:
            cases.append(clean)
    for item in independent:
        if _case_key(item) not in seen:
            seen.add(_case_key(item))
            cases.append(dict(item))
    raw = json.dumps(cases, indent=1, ensure_ascii=False).encode("utf-8")
    spec = ToolSpec(name=name, description=description, language=language, files={
        **merged, CASES_PATH: raw}, runtime=runtime, origin=origin,
        capabilities=tuple(sorted(set(capabilities))))
    evidence_of(spec.cases(), origin)  # every case parses and has a known source
    return spec
