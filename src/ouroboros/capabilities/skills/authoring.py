"""Create and mutate tools with an LLM, with build and test errors fed back for repair.

Each attempt asks the model for files, turns them into a `ToolSpec` and hands it to the
store, whose gate (build, tests, the kernel's `skill` patch) decides. A rejection goes back
to the model for up to `max_repairs` more attempts. Every attempt, accepted or not, is one
line in `tools/<tool_id>/history.jsonl` beside the tool's versions, so how a tool came to
be is on disk next to it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import SkillError, ToolNotFound, ToolRejected
from .governance import ToolPending
from .llm import LLMError, LLMProvider
from .prompts import (
    SYSTEM_PROMPT,
    AnswerFormatError,
    FailingCase,
    create_prompt,
    mutate_prompt,
    parse_files,
    redact_hidden,
    repair_prompt,
)
from .spec import CASES_PATH, LANGUAGES, NAME_RE, ToolSpec, parse_cases

DEFAULT_MAX_REPAIRS = 2


class AuthoringFailed(SkillError):
    """No attempt produced an accepted version; the last rejection is kept."""

    def __init__(self, action: str, tool_id: str, attempts: int, reason: str, detail: str):
        super().__init__(
            f"{action} {tool_id} failed after {attempts} attempt(s) ({reason}): {detail}"
        )
        self.action, self.tool_id, self.attempts = action, tool_id, attempts
        self.reason, self.detail = reason, detail


class StoreLike(Protocol):
    """The part of `SkillStore` authoring needs."""

    root: Path

    def add(self, spec: ToolSpec, parent: str | None = None) -> Any: ...

    def get(self, tool_id: str) -> Any: ...


@dataclass(frozen=True)
class Authored:
    """An accepted version and how many attempts it took."""

    version: Any  # ToolVersion
    attempts: int


def history_path(store_root: Path, tool_id: str) -> Path:
    return Path(store_root) / "tools" / tool_id / "history.jsonl"


def read_history(store_root: Path, tool_id: str) -> list[dict[str, Any]]:
    path = history_path(store_root, tool_id)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def name_from_task(task: str) -> str:
    """A valid tool name from a task description: the first few words, snake_case."""
    stop = {"a", "an", "the", "to", "of", "and", "or", "for", "in", "on", "into", "with", "that"}
    words = [w for w in re.findall(r"[a-z0-9]+", task.lower()) if w not in stop]
    name = "_".join(words[:5])[:48].strip("_") or "tool"
    return name if name[0].isalpha() else f"tool_{name}"[:48]


class ToolAuthor:
    """Drives the model through create / mutate attempts against a store."""

    def __init__(
        self,
        store: StoreLike,
        provider: LLMProvider,
        *,
        max_repairs: int = DEFAULT_MAX_REPAIRS,
        on_accepted: Callable[[Any], None] | None = None,
    ) -> None:
        if max_repairs < 0:
            raise ValueError("max_repairs must be >= 0")
        self.store, self.provider, self.max_repairs = store, provider, max_repairs
        self._on_accepted = on_accepted

    def create(
        self,
        task: str,
        *,
        name: str | None = None,
        language: str = "python",
        similar: Sequence[tuple[str, str]] = (),
    ) -> Authored:
        """Write a new tool for `task`.

        Raises:
            AuthoringFailed: every attempt was unparseable or rejected.
            LLMError: the endpoint failed.
            ValueError: bad name or language.
        """
        if not task.strip():
            raise ValueError("the task description is empty")
        tool_id = name or self._free_name(name_from_task(task))
        _check_name(tool_id)
        if name and self._exists(name):
            raise ValueError(f"tool {name!r} already exists: mutate it, or pick another name")
        if language not in LANGUAGES:
            raise ValueError(f"language {language!r} is not supported; use one of "
                             f"{', '.join(LANGUAGES)}")
        prompt = create_prompt(task, tool_id, language, similar)

        def to_spec(files: dict[str, str]) -> ToolSpec:
            return _spec_from_files(files, tool_id, task, language, base={}, hidden=[])

        return self._attempts("create", tool_id, None, prompt, to_spec, hidden=[])

    def mutate(
        self,
        parent_id: str,
        task: str,
        *,
        name: str | None = None,
        failing: Sequence[FailingCase] = (),
    ) -> Authored:
        """Specialise or fix an existing tool; the result is a child version of it.

        The parent's hidden cases are carried into the child's tests unseen, so a mutation
        must still pass them.
        """
        if not task.strip():
            raise ValueError("the task description is empty")
        parent = self.store.get(parent_id)
        tool_id = name or parent.tool_id
        _check_name(tool_id)
        visible_files = parent.files(include_hidden=False)
        sources = {p: b.decode("utf-8", "replace") for p, b in visible_files.items()
                   if p != CASES_PATH}
        visible = [c.to_json() for c in parent.cases(include_hidden=False)]
        hidden = [c.to_json() for c in parent.cases(include_hidden=True) if c.hidden]
        prompt = mutate_prompt(task, parent.tool_id, parent.description, parent.language,
                               sources, visible, bool(hidden), failing, name)
        base = {**sources, CASES_PATH: json.dumps(visible)}
        parent_cases = parent.files(include_hidden=True)[CASES_PATH]
        runtime = parent.runtime if parent.runtime == "micropython" else None

        def to_spec(files: dict[str, str]) -> ToolSpec:
            return _spec_from_files(files, tool_id, parent.description, parent.language,
                                    base=base, hidden=hidden, fallback_runtime=runtime,
                                    parent_cases=parent_cases)

        return self._attempts("mutate", tool_id, parent, prompt, to_spec, hidden=hidden)

    # ---------------------------------------------------------------------------------
    def _exists(self, tool_id: str) -> bool:
        try:
            self.store.get(tool_id)
        except ToolNotFound:
            return False
        return True

    def _free_name(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`... if taken: create never overwrites a tool."""
        name, n = base, 1
        while self._exists(name):
            n += 1
            name = f"{base[:60]}_{n}"
        return name

    def _attempts(
        self,
        action: str,
        tool_id: str,
        parent: Any,
        prompt: str,
        to_spec: Callable[[dict[str, str]], ToolSpec],
        hidden: Sequence[Mapping[str, Any]],
    ) -> Authored:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ]
        reason, detail = "none", "no attempt made"
        total = self.max_repairs + 1
        for attempt in range(1, total + 1):
            record: dict[str, Any] = {
                "time": time.time(), "action": action, "attempt": attempt, "of": total,
                "tool_id": tool_id, "model": self.provider.model,
                "parent": _version_ref(parent), "prompt": messages[-1]["content"],
            }
            try:
                reply = self.provider.chat(messages)
            except LLMError as e:
                self._record(tool_id, {**record, "outcome": "llm_error", "detail": str(e)})
                raise
            record["answer"] = reply.content
            messages.append({"role": "assistant", "content": reply.content})
            try:
                files = parse_files(reply.content)
                record["files"] = sorted(files)
                spec = to_spec(files)
                version = self.store.add(
                    spec, parent=None if parent is None else parent.fingerprint)
            except ToolPending as e:
                # the kernel accepted the content but a human must approve it: not a defect
                # to repair, so stop here and let the caller say how to approve
                self._record(tool_id, {**record, "outcome": "pending",
                                       "patch_hash": e.patch_hash, "detail": str(e)})
                raise
            except AnswerFormatError as e:
                reason, detail = "format", str(e)
            except ToolRejected as e:
                reason, detail = e.reason, redact_hidden(e.detail, hidden)
            except SkillError as e:  # MalformedTool from the spec, BuildFailed, ...
                reason, detail = "malformed", redact_hidden(str(e), hidden)
            else:
                if parent is not None and version.fingerprint == parent.fingerprint:
                    reason, detail = "unchanged", (
                        "the answer is identical to the current version; change it as the "
                        "task asks")
                    self._record(tool_id, {**record, "outcome": "rejected", "reason": reason,
                                           "detail": detail})
                    messages.append({"role": "user", "content": repair_prompt(reason, detail)})
                    continue
                self._record(tool_id, {**record, "outcome": "accepted",
                                       "fingerprint": version.fingerprint})
                if self._on_accepted is not None:
                    self._on_accepted(version)
                return Authored(version, attempt)
            self._record(tool_id, {**record, "outcome": "rejected", "reason": reason,
                                   "detail": detail})
            messages.append({"role": "user", "content": repair_prompt(reason, detail)})
        raise AuthoringFailed(action, tool_id, total, reason, detail)

    def _record(self, tool_id: str, record: dict[str, Any]) -> None:
        path = history_path(self.store.root, tool_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(
            f"tool name {name!r} is invalid: use lowercase letters, digits and '_', "
            "starting with a letter"
        )


def _version_ref(version: Any) -> str | None:
    if version is None:
        return None
    return f"{version.tool_id}@{version.fingerprint}"


def _spec_from_files(
    files: dict[str, str],
    name: str,
    fallback_description: str,
    fallback_language: str,
    *,
    base: Mapping[str, str],
    hidden: Sequence[Mapping[str, Any]],
    fallback_runtime: str | None = None,
    parent_cases: bytes | None = None,
) -> ToolSpec:
    """A spec from the model's files over `base` (the parent's), hidden cases re-attached.

    The name is ours, not the model's: a model cannot overwrite another tool by naming it.
    Cases equal to the parent's keep the parent's exact bytes, so an answer that changes
    nothing yields the parent's fingerprint rather than a reformatted twin.
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
    language = str(meta.get("language") or fallback_language)
    runtime = meta.get("runtime") if isinstance(meta.get("runtime"), str) else fallback_runtime
    merged: dict[str, bytes] = {p: c.encode("utf-8") for p, c in base.items()}
    merged.update({p: c.encode("utf-8") for p, c in files.items() if p != "meta.json"})
    if language in LANGUAGES and LANGUAGES[language] not in merged:
        raise AnswerFormatError(f"the answer has no {LANGUAGES[language]} block")
    if hidden and CASES_PATH in merged:
        parse_cases(merged[CASES_PATH])  # names the bad case if the model's JSON is wrong
        cases = [c for c in json.loads(merged[CASES_PATH]) if not c.get("hidden")]
        merged[CASES_PATH] = json.dumps([*cases, *hidden], indent=1).encode("utf-8")
    if parent_cases is not None and CASES_PATH in merged and _same_json(
            merged[CASES_PATH], parent_cases):
        merged[CASES_PATH] = parent_cases
    return ToolSpec(name=name, description=description, language=language, files=merged,
                    runtime=runtime)


def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
