"""The agent control plane: OpenAI tool-calling schemas and the seed's `solve(task)` loop.

solve: embed the task, retrieve candidate tools, show them to the model with five
functions (list_tools, describe_binary, run_binary, mutate_binary, create_binary), carry
out what it calls, and stop at its final answer. Whether a task was served by an existing
tool or needed a new one is counted in `skills-stats.json`: the seed's promise is reuse
instead of regeneration, and this is where that is measured.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .authoring import AuthoringFailed, ToolAuthor
from .errors import SkillError
from .llm import LLMProvider
from .prompts import FailingCase
from .retrieval import SkillIndex

MAX_RESULT_CHARS = 4000
LIST_ALL_LIMIT = 50

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "list_tools",
        "description": "Find stored tools by meaning (with a query), or list them all "
                       "(without). Returns ids, descriptions and, for a query, scores.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "what the tool should do"},
            "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}},
            "required": [], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "describe_binary",
        "description": "Read a tool's metadata: description, language, lineage, visible "
                       "test cases (examples of its input and output) and usage metrics.",
        "parameters": {"type": "object", "properties": {
            "binary_id": {"type": "string", "description": "tool id"}},
            "required": ["binary_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "run_binary",
        "description": "Run a stored tool in the sandbox on one JSON input; returns its JSON "
                       "output or the error.",
        "parameters": {"type": "object", "properties": {
            "binary_id": {"type": "string", "description": "tool id"},
            "input_json": {"type": "string", "description": "the input, as JSON text"}},
            "required": ["binary_id", "input_json"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "mutate_binary",
        "description": "Make a specialised or fixed version of an existing tool; its tests "
                       "gate the result. Returns the new version's id.",
        "parameters": {"type": "object", "properties": {
            "parent_id": {"type": "string", "description": "the tool to start from"},
            "task_description": {"type": "string", "description": "what must change"},
            "failing_input_json": {"type": "string",
                                   "description": "optional: an input it gets wrong"}},
            "required": ["parent_id", "task_description"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "create_binary",
        "description": "Write, test and store a new tool when no existing one fits.",
        "parameters": {"type": "object", "properties": {
            "task_description": {"type": "string", "description": "what the tool does"},
            "name": {"type": "string", "description": "optional snake_case tool name"}},
            "required": ["task_description"], "additionalProperties": False}}},
]

SOLVE_SYSTEM_PROMPT = """\
You solve tasks with stored tools that run in a sandbox. Prefer running an existing tool.
If a tool almost fits, mutate_binary it; create_binary only when nothing fits. After a tool
produced the result, answer the user in plain text, quoting the tool's output.
"""


class SolveStore(Protocol):
    root: Path

    def get(self, tool_id: str) -> Any: ...

    def run(self, tool_id: str, input: Any) -> Any: ...


@dataclass
class SolveResult:
    answer: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    mutated: list[str] = field(default_factory=list)
    outcome: str = "unsolved"  # reused | mutated | created | no_tool | unsolved

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SolveStats:
    """Persisted counters of how tasks were served (atomic rewrite per update)."""

    KEYS = ("tasks", "reused", "mutated", "created", "no_tool", "unsolved")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def read(self) -> dict[str, int]:
        data: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                data = {}
        return {k: int(data.get(k, 0)) for k in self.KEYS}

    def bump(self, outcome: str) -> dict[str, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # other processes solve too
            stats = self.read()
            stats["tasks"] += 1
            stats[outcome] = stats.get(outcome, 0) + 1
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stats, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            return stats

    @staticmethod
    def reuse_rate(stats: Mapping[str, int]) -> float | None:
        served = stats["reused"] + stats["mutated"] + stats["created"]
        return None if served == 0 else stats["reused"] / served


def stats_path(store_root: Path) -> Path:
    return Path(store_root) / "skills-stats.json"


class Solver:
    """One task at a time: retrieve, let the model act through the functions, answer."""

    def __init__(
        self,
        store: SolveStore,
        index: SkillIndex,
        provider: LLMProvider,
        author: ToolAuthor,
        *,
        candidates: int = 5,
        max_steps: int = 8,
    ) -> None:
        self.store, self.index, self.provider, self.author = store, index, provider, author
        self.candidates, self.max_steps = candidates, max_steps
        self.stats = SolveStats(stats_path(store.root))

    def solve(self, task: str, input: Any = None) -> SolveResult:
        if not task.strip():
            raise ValueError("the task is empty")
        hits = self.index.search(task, k=self.candidates) if len(self.index) else []
        known_before = {h.tool_id for h in hits} | {e.tool_id for e in self.index.entries()}
        listing = "\n".join(f"- {h.tool_id}: {_description(h.text)}" for h in hits) or "(none)"
        user = f"Task: {task.strip()}\n"
        if input is not None:
            user += f"Input (JSON): {json.dumps(input)}\n"
        user += f"\nCandidate tools (best first):\n{listing}\n"
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SOLVE_SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ]
        result = SolveResult(answer="")
        for _ in range(self.max_steps):
            reply = self.provider.chat(messages, tools=TOOL_SCHEMAS)
            if not reply.tool_calls:
                result.answer = reply.content.strip()
                break
            messages.append(reply.as_message())
            for call in reply.tool_calls:
                started = time.perf_counter()
                output = self._dispatch(call.name, call.arguments, result)
                text = json.dumps(output, default=str)
                if len(text) > MAX_RESULT_CHARS:
                    text = text[:MAX_RESULT_CHARS] + "...(truncated)"
                result.steps.append({"call": call.name, "arguments": call.arguments,
                                     "result": output,
                                     "ms": round((time.perf_counter() - started) * 1000, 1)})
                messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        else:
            result.answer = "stopped: the model used every step without answering"
        result.outcome = _outcome(result, known_before)
        self.stats.bump(result.outcome)
        return result

    # -- the five functions ------------------------------------------------------------
    def _dispatch(self, name: str, args: Mapping[str, Any], result: SolveResult) -> Any:
        if "_invalid" in args:
            return {"error": f"arguments are not a JSON object: {args['_invalid']!r}"}
        try:
            if name == "list_tools":
                k = max(1, min(int(args.get("k", 5)), 20))
                if not str(args.get("query") or "").strip():
                    return [{"id": e.tool_id, "description": _description(e.text)}
                            for e in self.index.entries()[:LIST_ALL_LIMIT]]
                hits = self.index.search(str(args["query"]), k=k)
                return [{"id": h.tool_id, "description": _description(h.text),
                         "score": h.score} for h in hits]
            if name == "describe_binary":
                return self._describe(str(args["binary_id"]))
            if name == "run_binary":
                return self._run(str(args["binary_id"]), args["input_json"], result)
            if name == "mutate_binary":
                failing = []
                if args.get("failing_input_json") is not None:
                    failing = [FailingCase(_json_arg(args["failing_input_json"]),
                                           "the caller says this input is handled wrongly")]
                done = self.author.mutate(str(args["parent_id"]),
                                          str(args["task_description"]), failing=failing)
                result.mutated.append(done.version.tool_id)
                return {"id": done.version.tool_id, "fingerprint": done.version.fingerprint,
                        "attempts": done.attempts}
            if name == "create_binary":
                similar = [(h.tool_id, _description(h.text)) for h in self.index.search(
                    str(args["task_description"]), k=3)] if len(self.index) else []
                done = self.author.create(str(args["task_description"]),
                                          name=args.get("name") or None, similar=similar)
                result.created.append(done.version.tool_id)
                return {"id": done.version.tool_id, "fingerprint": done.version.fingerprint,
                        "attempts": done.attempts}
        except KeyError as e:
            return {"error": f"{name}: missing argument {e}"}
        except json.JSONDecodeError as e:
            return {"error": f"{name}: input is not valid JSON: {e}"}
        except AuthoringFailed as e:
            return {"error": str(e)}
        except (SkillError, ValueError) as e:
            return {"error": f"{type(e).__name__}: {e}"}
        return {"error": f"unknown function {name!r}"}

    def _describe(self, tool_id: str) -> dict[str, Any]:
        v = self.store.get(tool_id)
        metrics = {k: val for k, val in (v.meta.get("metrics") or {}).items()
                   if k != "recent_ms"}
        return {"id": v.tool_id, "fingerprint": v.fingerprint, "parent": v.parent,
                "description": v.description, "language": v.language,
                "examples": [c.to_json() for c in v.cases(include_hidden=False)][:5],
                "metrics": metrics}

    def _run(self, tool_id: str, input_json: Any, result: SolveResult) -> Any:
        value = _json_arg(input_json)
        result.ran.append(tool_id)
        try:
            run = self.store.run(tool_id, value)
        except SkillError as e:
            result.ran[-1] = f"{tool_id}!failed"
            return {"error": f"{type(e).__name__}: {e}"}
        output = getattr(run, "output", run)
        return {"output": output}


def _json_arg(value: Any) -> Any:
    """A JSON-text argument; models often send the value itself instead, so take that too."""
    return json.loads(value) if isinstance(value, str) else value


def _description(text: str) -> str:
    text = text.split("\n", 1)[0]  # an index entry's first line: "name words: description"
    return text.split(": ", 1)[1] if ": " in text else text


def _outcome(result: SolveResult, known_before: set[str]) -> str:
    ok_runs = [t for t in result.ran if not t.endswith("!failed")]
    if not result.answer or result.answer.startswith("stopped:"):
        return "unsolved"
    if result.created and any(t in result.created for t in ok_runs):
        return "created"
    if result.mutated and any(t in result.mutated for t in ok_runs):
        return "mutated"
    if any(t in known_before for t in ok_runs):
        return "reused"
    if result.created:
        return "created"
    if result.mutated:
        return "mutated"
    return "no_tool"
