"""Create and mutate tools with an LLM; the tool is judged by cases its author did not write.

A create or mutate runs in two conversations that never meet:

1. the **test writer** (`independent.py`) sees the task (for a mutation, also the parent's
   description and visible cases) and answers with schemas and cases, never seeing code;
2. the **code writer** sees the task and answers with files; its own cases must number at
   least `SkillPolicy.min_author_cases`, and an error case must name its error.

The candidate's cases are then: the parent's (for a mutation: every one, hidden ones
unchanged and unseen), the author's (marked ``author``, whatever the model wrote in them),
examples from the task (``task``), the test writer's (``test_writer``, hidden), property
checks from its schemas (``property``, hidden) and, with a reference tool, its outputs
(``differential``, hidden). The store's gate runs them all; a failing hidden case goes back
to the code writer as "hidden case N failed", never with its values. What the accepted
version proves is recorded in its meta.json (see `evidence.py`).

Every attempt is one line in `tools/<tool_id>/history.jsonl`. A repair request holds the
task, the previous answer's files and the rejection, not the whole conversation, so neither
requests nor the history grow with the number of attempts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouroboros.storage.files import read_bounded, regular_opener

from .candidate import Unchanged, origin_of, spec_from_answer
from .errors import SkillError, ToolCorrupt, ToolNotFound, ToolRejected
from .evidence import SkillPolicy
from .governance import ToolPending
from .independent import (
    TestWriterError,
    differential_cases,
    examples_from_task,
    parse_test_writer,
    property_cases,
    test_writer_request,
)
from .llm import LLMError
from .prompts import (
    DEFAULT_MAX_REPAIRS,
    AnswerFormatError,
    FailingCase,
    create_prompt,
    mutate_prompt,
    parse_files,
    redact_hidden,
    render_file,
    repair_prompt,
    system_prompt,
)
from .spec import CASES_PATH, LANGUAGES, NAME_RE, ToolSpec

if TYPE_CHECKING:  # the HTTP client loads when a provider is made, not on import
    from .llm import LLMProvider

MAX_TASK_CHARS = 20_000
MAX_HISTORY_TEXT = 64_000  # per field of a history line; the rest is hashed, not kept
MAX_RESENT_ANSWER = 200_000  # the previous answer's files in a repair request


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
    policy: SkillPolicy

    def add(self, spec: ToolSpec, parent: str | None = None) -> Any: ...

    def get(self, tool_id: str) -> Any: ...

    def run(self, tool_id: str, input: Any, fingerprint: str | None = None, limits: Any = None,
            *, record: bool = True) -> Any: ...


@dataclass(frozen=True)
class Authored:
    """An accepted version, how many code-writing attempts it took, and what proves it."""

    version: Any  # ToolVersion
    attempts: int
    notes: tuple[str, ...] = ()

    @property
    def evidence(self) -> dict[str, Any]:
        return dict(self.version.meta.get("evidence") or {})


@dataclass
class Independent:
    """Cases the code's author did not write (cases.json items, with their source)."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> list[dict[str, Any]]:
        return [c for c in self.cases if c.get("hidden")]


def history_path(store_root: Path, tool_id: str) -> Path:
    return Path(store_root) / "tools" / tool_id / "history.jsonl"


#: The most of a history file read back (one line an LLM attempt, each at most a few KiB).
MAX_HISTORY = 64 << 20


def read_history(store_root: Path, tool_id: str) -> list[dict[str, Any]]:
    """The tool's authoring attempts, oldest first; lines that are not a JSON object are
    skipped.

    Raises:
        UnsafeFile: ``history.jsonl`` is a link, FIFO, device or folder, or larger than
            `MAX_HISTORY` (named; never followed, waited on or read whole).
    """
    data = read_bounded(history_path(store_root, tool_id), MAX_HISTORY)
    if data is None:
        return []
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            continue  # a line torn by a crash mid-append, or scribbled: skip it
        if isinstance(record, dict):
            records.append(record)
    return records


def name_from_task(task: str) -> str:
    """A valid tool name from a task description: the first few words, snake_case."""
    stop = {"a", "an", "the", "to", "of", "and", "or", "for", "in", "on", "into", "with", "that"}
    words = [w for w in re.findall(r"[a-z0-9]+", task.lower()) if w not in stop]
    name = "_".join(words[:5])[:48].strip("_") or "tool"
    return name if name[0].isalpha() else f"tool_{name}"[:48]


class ToolAuthor:
    """Drives the model through create / mutate attempts against a store.

    Args:
        test_writer: ask a separate call for independent cases (off only to measure the
            difference; without it an LLM-made tool is unproven unless its task has examples).
    """

    def __init__(
        self,
        store: StoreLike,
        provider: LLMProvider,
        *,
        max_repairs: int = DEFAULT_MAX_REPAIRS,
        on_accepted: Callable[[Any], None] | None = None,
        test_writer: bool = True,
    ) -> None:
        if max_repairs < 0:
            raise ValueError("max_repairs must be >= 0")
        self.store, self.provider, self.max_repairs = store, provider, max_repairs
        self._on_accepted = on_accepted
        self.test_writer = test_writer

    def with_provider(self, provider: LLMProvider) -> ToolAuthor:
        """The same author speaking through another provider (a task's metered one)."""
        return ToolAuthor(self.store, provider, max_repairs=self.max_repairs,
                          on_accepted=self._on_accepted, test_writer=self.test_writer)

    @property
    def policy(self) -> SkillPolicy:
        return getattr(self.store, "policy", None) or SkillPolicy()

    def create(
        self,
        task: str,
        *,
        name: str | None = None,
        language: str = "python",
        similar: Sequence[tuple[str, str]] = (),
        reference: str | None = None,
    ) -> Authored:
        """Write a new tool for `task`; `reference` names an existing tool whose outputs the
        new one must reproduce (a rewrite, a port, a faster version).

        Raises:
            AuthoringFailed: every attempt was unparseable or rejected.
            LLMError: the endpoint failed (BudgetExceeded: the task's budget ran out).
            ValueError: bad name, language, task or reference.
        """
        _check_task(task)
        tool_id = name or self._free_name(name_from_task(task))
        _check_name(tool_id)
        if name and self._exists(name):
            raise ValueError(f"tool {name!r} already exists: mutate it, or pick another name")
        if language not in LANGUAGES:
            raise ValueError(f"language {language!r} is not supported; use one of "
                             f"{', '.join(LANGUAGES)}")
        if reference is not None:
            self.store.get(reference)  # ToolNotFound (a SkillError) names a missing one
        independent = self._independent(task, tool_id, "create", reference=reference)
        prompt = create_prompt(task, tool_id, language, similar)
        origin = origin_of(self.provider.model)

        def to_spec(files: dict[str, str]) -> ToolSpec:
            return spec_from_answer(files, tool_id, task[:300], language, origin=origin,
                                    inherited=[], independent=independent.cases,
                                    min_author_cases=self.policy.min_author_cases)

        return self._attempts("create", tool_id, None, prompt, to_spec,
                              secret=independent.hidden, notes=independent.notes)

    def mutate(
        self,
        parent_id: str,
        task: str,
        *,
        name: str | None = None,
        failing: Sequence[FailingCase] = (),
    ) -> Authored:
        """Specialise or fix an existing tool; the result is a child version of it.

        The child keeps the parent's contract: every parent case, visible and hidden, is in
        its tests and must pass; the hidden ones are never shown. A visible case the author
        gives again with another expectation is a change a person approves (see
        `SkillStore.add`).
        """
        _check_task(task)
        parent = self.store.get(parent_id)
        tool_id = name or parent.tool_id
        _check_name(tool_id)
        if name and name != parent.tool_id and self._exists(name):
            raise ValueError(f"tool {name!r} already exists: pick another name")
        visible_files = parent.files(include_hidden=False)
        sources = {p: b.decode("utf-8", "replace") for p, b in visible_files.items()
                   if p != CASES_PATH}
        visible = [c.to_json() for c in parent.cases(include_hidden=False)]
        inherited = json.loads(parent.files(include_hidden=True)[CASES_PATH])
        parent_hidden = [c for c in inherited if c.get("hidden")]
        examples = [{k: c[k] for k in ("input", "expected", "error") if k in c}
                    for c in visible if "schema" not in c]
        independent = self._independent(task, tool_id, "mutate",
                                        parent_description=parent.description,
                                        parent_examples=examples)
        # a failing input with a known answer came from the caller, not the author
        for f in failing:
            if f.expected is not None:
                independent.cases.append({"input": f.input, "expected": f.expected,
                                          "source": "task"})
        prompt = mutate_prompt(task, parent.tool_id, parent.description, parent.language,
                               sources, visible, bool(parent_hidden), failing, name)
        runtime = parent.runtime if parent.runtime == "micropython" else None
        origin = origin_of(self.provider.model)

        parent_files = parent.files(include_hidden=True)

        def to_spec(files: dict[str, str]) -> ToolSpec:
            spec = spec_from_answer(files, tool_id, parent.description, parent.language,
                                    origin=origin, inherited=inherited,
                                    independent=independent.cases, base=sources,
                                    fallback_runtime=runtime,
                                    min_author_cases=self.policy.min_author_cases,
                                    parent_capabilities=tuple(parent.meta.get("capabilities")
                                                              or ()))
            same_src = {p: b for p, b in spec.files.items() if p != CASES_PATH} == {
                p: b for p, b in parent_files.items() if p != CASES_PATH}
            author_cases = [c for c in spec.cases() if c.source == "author"]
            if tool_id == parent.tool_id and same_src and not author_cases \
                    and spec.description == parent.description:
                raise Unchanged("the answer is identical to the current version; change it "
                                "as the task asks")
            return spec

        return self._attempts("mutate", tool_id, parent, prompt, to_spec,
                              secret=[*parent_hidden, *independent.hidden],
                              notes=independent.notes)

    # ---------------------------------------------------------------------------------
    def _independent(self, task: str, tool_id: str, action: str, *,
                     reference: str | None = None, parent_description: str | None = None,
                     parent_examples: Sequence[Mapping[str, Any]] = ()) -> Independent:
        """Task examples, the test writer's cases and property checks, and the reference's
        outputs: everything that will judge the code without its author's say."""
        out = Independent()
        for item in examples_from_task(task):
            out.cases.append({**item, "source": "task", "name": "example from the task"})
        written = None
        if self.test_writer:
            written = self._write_tests(task, tool_id, action, parent_description,
                                        parent_examples)
        if written is not None:
            out.notes += written.notes
            known = {json.dumps(c["input"], sort_keys=True) for c in out.cases}
            for item in written.cases:
                if json.dumps(item["input"], sort_keys=True) not in known:
                    out.cases.append({**item, "source": "test_writer", "hidden": True})
            inputs = [c["input"] for c in out.cases]
            for item in property_cases(tool_id, written.input_schema, written.output_schema,
                                       inputs):
                out.cases.append({**item, "source": "property", "hidden": True})
        if reference is not None:
            ref = reference

            def call(value: Any) -> Any:
                return self.store.run(ref, value, record=False).output

            inputs = [c["input"] for c in out.cases]
            for item in differential_cases(ref, call, inputs):
                # the reference a person named outranks the test-writing model on an input
                out.cases = [c for c in out.cases if c["input"] != item["input"]
                             or c.get("source") != "test_writer"]
                out.cases.append({**item, "source": "differential", "hidden": True})
            if not inputs:
                out.notes.append(f"reference {ref} given but no inputs to compare it on")
        return out

    def _write_tests(self, task: str, tool_id: str, action: str,
                     parent_description: str | None,
                     parent_examples: Sequence[Mapping[str, Any]]) -> Any:
        minimum = self.policy.min_test_writer_cases
        messages = test_writer_request(task, tool_id, minimum,
                                       parent_description=parent_description,
                                       parent_examples=parent_examples)
        record: dict[str, Any] = {"time": time.time(), "action": "test_writer",
                                  "for": action, "tool_id": tool_id,
                                  "model": self.provider.model,
                                  **_clip("prompt", messages[-1]["content"])}
        try:
            reply = self.provider.chat(messages)
        except LLMError as e:
            self._record(tool_id, {**record, "outcome": "llm_error", "detail": str(e)})
            raise
        record.update(_clip("answer", reply.content))
        try:
            written = parse_test_writer(reply.content, minimum)
        except TestWriterError as e:
            self._record(tool_id, {**record, "outcome": "unusable", "detail": str(e)})
            return None
        self._record(tool_id, {**record, "outcome": "accepted", "cases": len(written.cases),
                               "schemas": written.input_schema is not None})
        return written

    def _exists(self, tool_id: str) -> bool:
        try:
            self.store.get(tool_id)
        except ToolNotFound:
            return False
        except ToolCorrupt:  # tampered on disk, but taken: never write over it
            return True
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
        secret: Sequence[Mapping[str, Any]],
        notes: Sequence[str] = (),
    ) -> Authored:
        system = {"role": "system", "content": system_prompt(self.policy.min_author_cases)}
        task_message = {"role": "user", "content": prompt}
        messages: list[dict[str, Any]] = [system, task_message]
        reason, detail = "none", "no attempt made"
        total = self.max_repairs + 1
        for attempt in range(1, total + 1):
            record: dict[str, Any] = {
                "time": time.time(), "action": action, "attempt": attempt, "of": total,
                "tool_id": tool_id, "model": self.provider.model,
                "parent": _version_ref(parent),
                **_clip("prompt" if attempt == 1 else "repair", messages[-1]["content"]),
            }
            try:
                reply = self.provider.chat(messages)
            except LLMError as e:
                self._record(tool_id, {**record, "outcome": "llm_error", "detail": str(e)})
                raise
            record.update(_clip("answer", reply.content))
            files: dict[str, str] = {}
            try:
                files = parse_files(reply.content)
                record["files"] = sorted(files)
                spec = to_spec(files)
                version = self.store.add(
                    spec, parent=None if parent is None else parent.fingerprint)
            except ToolPending as e:
                # the kernel accepted the content but a person must approve it: not a defect
                # to repair, so stop here and let the caller say how to approve
                self._record(tool_id, {**record, "outcome": "pending",
                                       "patch_hash": e.patch_hash, "detail": str(e)})
                raise
            except Unchanged as e:
                reason, detail = "unchanged", str(e)
            except AnswerFormatError as e:
                reason, detail = "format", str(e)
            except ToolRejected as e:
                reason, detail = e.reason, redact_hidden(e.detail, secret)
            except SkillError as e:  # MalformedTool from the spec, BuildFailed, ...
                reason, detail = "malformed", redact_hidden(str(e), secret)
            else:
                if parent is not None and version.fingerprint == parent.fingerprint:
                    reason, detail = "unchanged", (
                        "the answer is identical to the current version; change it as the "
                        "task asks")
                else:
                    self._record(tool_id, {**record, "outcome": "accepted",
                                           "fingerprint": version.fingerprint,
                                           "evidence": version.meta.get("evidence")})
                    if self._on_accepted is not None:
                        self._on_accepted(version)
                    return Authored(version, attempt, tuple(notes))
            self._record(tool_id, {**record, "outcome": "rejected", "reason": reason,
                                   "detail": detail[:MAX_HISTORY_TEXT]})
            # only what a repair needs: the task, the files just rejected, and why
            messages = [system, task_message]
            if files:
                shown = "\n\n".join(render_file(p, c) for p, c in sorted(files.items()))
                messages.append({"role": "assistant", "content": shown[:MAX_RESENT_ANSWER]})
            messages.append({"role": "user", "content": repair_prompt(reason, detail)})
        raise AuthoringFailed(action, tool_id, total, reason, detail)

    def _record(self, tool_id: str, record: dict[str, Any]) -> None:
        path = history_path(self.store.root, tool_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(path, "a+b", opener=regular_opener) as f:  # never through a planted link
            if f.tell() > 0:  # after a crash mid-append: end the torn line, keep this one whole
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))


def _clip(key: str, text: str) -> dict[str, Any]:
    """A history field: the text up to a bound, with its length and hash when cut."""
    if len(text) <= MAX_HISTORY_TEXT:
        return {key: text}
    return {key: text[:MAX_HISTORY_TEXT], f"{key}_chars": len(text),
            f"{key}_sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()}


def _check_task(task: str) -> None:
    if not task.strip():
        raise ValueError("the task description is empty")
    if len(task) > MAX_TASK_CHARS:
        raise ValueError(f"the task description is {len(task)} characters; at most "
                         f"{MAX_TASK_CHARS}")


def _check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"tool name {name!r} is invalid: use lowercase letters, digits and '_', "
            "starting with a letter"
        )


def _version_ref(version: Any) -> str | None:
    if version is None:
        return None
    return f"{version.tool_id}@{version.fingerprint}"
