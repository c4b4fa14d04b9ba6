"""Calling a tool by the protocol, and judging its test cases.

Protocol: one JSON value on stdin, one JSON value on stdout; a non-zero exit is an error
whose message is stderr. A case passes when the printed JSON equals `expected`; for an
`error` case, when the tool exits non-zero with that text in stderr; for a `schema` case (a
property check), when the output validates against the schema or the tool refuses the input
with an error message of its own (crashes, limit hits and off-schema output fail).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .builders import Built
from .errors import (
    DeadlineExceeded,
    FuelExhausted,
    MemoryLimitExceeded,
    OutputTooLarge,
    SandboxError,
    ToolCrashed,
    ToolFailed,
)
from .runtimes import Runtimes
from .sandbox import Execution, Limits
from .spec import TestCase, ToolSpec

SILENT_EXIT = "the tool exited silently with code "
LIMIT_ERRORS = (FuelExhausted, DeadlineExceeded, MemoryLimitExceeded, OutputTooLarge)
_SHOWN = 300


def call_tool(
    runtimes: Runtimes, built: Built, source: str, input: Any, limits: Limits
) -> tuple[Any, Execution]:
    """Run one call; return the parsed output.

    Raises:
        ToolFailed: non-zero exit (message: the tool's stderr).
        ToolCrashed: the output is not one JSON value (or the guest trapped).
        FuelExhausted, DeadlineExceeded, MemoryLimitExceeded, OutputTooLarge.
    """
    stdin = json.dumps(input).encode()
    execution = runtimes.execute(
        built.runtime, stdin, limits, wasm=built.wasm, wasm_hash=built.wasm_hash, source=source
    )
    if execution.exit_code != 0:
        message = execution.stderr.decode("utf-8", "replace").strip()
        raise ToolFailed(
            _tail(message) or f"{SILENT_EXIT}{execution.exit_code}",
            execution.exit_code,
        )
    text = execution.stdout.decode("utf-8", "replace").strip()
    try:
        return json.loads(text), execution
    except json.JSONDecodeError:
        shown = text[:_SHOWN] or "nothing"
        raise ToolCrashed(f"the tool must print one JSON value; it printed {shown!r}") from None


@dataclass(frozen=True)
class CaseResult:
    case: TestCase
    ok: bool
    actual: Any = None
    error: str | None = None
    error_type: str | None = None

    @property
    def reject_reason(self) -> str:
        return "limits" if self.error_type in {c.__name__ for c in LIMIT_ERRORS} else "tests"

    def describe(self) -> str:
        """Why the case failed. A hidden case names itself and the kind of failure only."""
        if self.ok:
            label = f"hidden case {self.case.index}" if self.case.hidden else self.case.label
            return f"{label}: passed"
        if self.case.hidden:
            kind = self.error_type or "wrong output"
            return f"hidden case {self.case.index} failed ({kind}); hidden cases are not shown"
        got = (
            f"{self.error_type}: {self.error}" if self.error_type else _short(self.actual)
        )
        want = (
            f"an error containing {self.case.expected_error!r}"
            if self.case.expected_error is not None
            else "output matching its schema" if self.case.schema is not None
            else _short(self.case.expected)
        )
        return f"{self.case.label}: input {_short(self.case.input)} expected {want}, got {got}"

    def to_json(self, include_hidden: bool = False) -> dict[str, Any]:
        """A hidden case's input is left out unless asked for (it must never reach an LLM)."""
        label = self.case.label
        if self.case.hidden and not include_hidden:
            label = f"hidden case {self.case.index}"
        out: dict[str, Any] = {"name": label, "ok": self.ok, "hidden": self.case.hidden}
        if not self.ok:
            out["detail"] = self.describe()
        if include_hidden or not self.case.hidden:
            out["input"] = self.case.input
        return out


@dataclass(frozen=True)
class TestReport:
    tool_id: str
    fingerprint: str
    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self, include_hidden: bool = False) -> dict[str, Any]:
        return {
            "tool_id": self.tool_id,
            "fingerprint": self.fingerprint,
            "passed": self.passed,
            "total": len(self.results),
            "failed": sum(1 for r in self.results if not r.ok),
            "cases": [r.to_json(include_hidden) for r in self.results],
        }


def run_cases(
    runtimes: Runtimes, spec: ToolSpec, built: Built, cases: list[TestCase], limits: Limits
) -> list[CaseResult]:
    source = spec.files[spec.source_path].decode("utf-8", "replace")
    results = []
    for case in cases:
        results.append(_judge(runtimes, built, source, case, limits))
    return results


@dataclass(frozen=True)
class TestBatch:
    """Some of one version's cases with everything needed to judge them anywhere: the
    checked module (or interpreter pin), the source, and the limits of every call. It is
    picklable, so a pool or a Ray worker runs it with its own sandbox, under the same
    fuel, memory, deadline and output limits as a call in this process."""

    tool_id: str
    fingerprint: str
    built: Built
    source: str
    cases: tuple[TestCase, ...]
    limits: Limits

    def split(self, per_batch: int) -> list[TestBatch]:
        """The same cases in order, at most `per_batch` to a batch."""
        per_batch = max(1, per_batch)
        return [TestBatch(self.tool_id, self.fingerprint, self.built, self.source,
                          self.cases[i:i + per_batch], self.limits)
                for i in range(0, len(self.cases), per_batch)] or [self]


_WORKER_RUNTIMES: tuple[int, Runtimes] | None = None


def _worker_runtimes() -> Runtimes:
    """A sandbox of this process's own: a forked worker never reuses its parent's engine."""
    global _WORKER_RUNTIMES
    if _WORKER_RUNTIMES is None or _WORKER_RUNTIMES[0] != os.getpid():
        _WORKER_RUNTIMES = (os.getpid(), Runtimes())
    return _WORKER_RUNTIMES[1]


def run_batch(batch: TestBatch, runtimes: Runtimes | None = None) -> list[CaseResult]:
    """Judge a batch's cases in order (module-level, so any executor can run it)."""
    runtimes = runtimes or _worker_runtimes()
    return [_judge(runtimes, batch.built, batch.source, case, batch.limits)
            for case in batch.cases]


def _judge(
    runtimes: Runtimes, built: Built, source: str, case: TestCase, limits: Limits
) -> CaseResult:
    try:
        actual, _ = call_tool(runtimes, built, source, case.input, limits)
    except ToolFailed as e:
        if case.expected_error is not None and case.expected_error in str(e):
            return CaseResult(case, True, error=str(e), error_type="ToolFailed")
        if case.schema is not None and not str(e).startswith(SILENT_EXIT):
            return CaseResult(case, True, error=str(e), error_type="ToolFailed")
        return CaseResult(case, False, error=str(e), error_type="ToolFailed")
    except SandboxError as e:
        return CaseResult(case, False, error=str(e), error_type=type(e).__name__)
    if case.expected_error is not None:
        return CaseResult(case, False, actual=actual)
    if case.schema is not None:
        return CaseResult(case, _conforms(actual, case.schema), actual=actual)
    return CaseResult(case, _same(actual, case.expected), actual=actual)


def _conforms(value: Any, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.Draft202012Validator(schema).validate(value)
    except (jsonschema.ValidationError, jsonschema.SchemaError, RecursionError):
        return False
    return True


def _same(a: Any, b: Any) -> bool:
    """JSON equality where 1 == 1.0 but True != 1 (Python's == would say equal)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) in (int, float, str, type(None)) and (
        type(b) in (int, float, str, type(None))
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _tail(message: str) -> str:
    lines = message.splitlines()
    return "\n".join(lines[-6:])
