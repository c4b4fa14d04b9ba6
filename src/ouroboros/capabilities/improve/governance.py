"""The improvement loop's one seam to the kernel: proposals are ``file`` patches.

A ``file`` patch's value names a proposal and carries its unified diff against the
target repository at a pinned base commit. Its gates are the loop's: the **test**
gate is the validation pipeline on the proposal branch, the **audit** gate is the
policy tests, the **approval** gate always defers to a human (pending), and **apply**
is the merge into ``main`` (the type's effect). Every status change is also recorded
as a ledger event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jsonschema

FILE_TYPE = "file"
VALIDATION_TEST = "improve.validation"
AUTHOR = "improve"

#: JSON Schema of a ``file`` patch value (the kernel's schema gate checks it).
FILE_VALUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["proposal", "repository", "base", "branch", "diff", "files"],
    "additionalProperties": False,
    "properties": {
        "proposal": {"type": "string", "pattern": "^[0-9a-f]{6,32}$"},
        "repository": {"type": "string", "minLength": 1},
        "base": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "branch": {"type": "string", "pattern": "^ouro/proposal-[0-9a-f]{6,32}$"},
        "diff": {"type": "string", "minLength": 1},
        "files": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "category": {"type": "string"},
    },
}


@dataclass(frozen=True)
class GateResult:
    status: Literal["applied", "rejected", "pending"]
    patch_hash: str = ""
    stage: str = ""
    reason: str = ""


class Gates(Protocol):
    """What the loop provides to the kernel for ``file`` patches."""

    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]: ...

    def audit(self, value: Mapping[str, Any]) -> list[str]: ...

    def effect(self, value: Mapping[str, Any]) -> None: ...


class Governance(Protocol):
    def bind(self, gates: Gates) -> None: ...

    def submit(self, value: dict[str, Any], reasoning: str) -> GateResult: ...

    def approve(self, patch_hash: str, reviewer: str) -> GateResult: ...

    def reject(self, patch_hash: str, reason: str, reviewer: str) -> None: ...

    def record(self, kind: str, payload: dict[str, Any]) -> None: ...

    def events(self, kind: str | None = None) -> list[dict[str, Any]]: ...


def target_of(value: Mapping[str, Any]) -> str:
    return f"improve/proposals/{value['proposal']}"


class LocalGovernance:
    """The gate order of the kernel (schema, test, audit, approval) without a kernel.

    For running the loop in-process before a kernel workspace exists and for unit
    tests of the loop itself; with a kernel, :class:`KernelGovernance` is the one
    pipeline. Events go to an in-memory list (and optionally a JSONL file).
    """

    def __init__(self, log: Path | None = None) -> None:
        self.log = log
        self._events: list[dict[str, Any]] = []
        self._pending: dict[str, dict[str, Any]] = {}
        self._gates: Gates | None = None
        if log is not None and log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                self._events.append(event)
                digest = event["payload"].get("patch_hash")
                if event["kind"] == "PatchPending":
                    self._pending[digest] = event["payload"]["value"]
                elif event["kind"] in ("PatchApproved", "PatchRejected"):
                    self._pending.pop(digest, None)

    def bind(self, gates: Gates) -> None:
        self._gates = gates

    def _require(self) -> Gates:
        if self._gates is None:
            raise RuntimeError("governance is not bound to a loop")
        return self._gates

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        event = {"seq": len(self._events), "kind": kind, "payload": payload}
        self._events.append(event)
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, sort_keys=True) + "\n")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._events if kind is None or e["kind"] == kind]

    def submit(self, value: dict[str, Any], reasoning: str) -> GateResult:
        gates = self._require()
        digest = "sha256:" + hashlib.sha256(
            json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()
        errors = sorted(e.message for e in
                        jsonschema.Draft202012Validator(FILE_VALUE_SCHEMA).iter_errors(value))
        stage, reason = "", ""
        if errors:
            stage, reason = "schema", "; ".join(errors)
        else:
            ok, detail = gates.test(value)
            if not ok:
                stage, reason = "test", f"{VALIDATION_TEST}: {detail}"
            else:
                audit = gates.audit(value)
                if audit:
                    stage, reason = "audit", "; ".join(audit)
        if stage:
            self.record("PatchRejected", {"patch_hash": digest, "stage": stage, "reason": reason})
            return GateResult("rejected", digest, stage, reason)
        self._pending[digest] = value
        self.record("PatchPending", {"patch_hash": digest, "needs": "human approval",
                                     "value": value})
        return GateResult("pending", digest, "approval", "human approval")

    def approve(self, patch_hash: str, reviewer: str) -> GateResult:
        value = self._pending.pop(patch_hash, None)
        if value is None:
            return GateResult("rejected", patch_hash, "approval", "no pending patch")
        self.record("PatchApproved", {"patch_hash": patch_hash, "by": reviewer})
        self._require().effect(value)
        self.record("PatchApplied", {"patch_hash": patch_hash, "target": target_of(value)})
        return GateResult("applied", patch_hash)

    def reject(self, patch_hash: str, reason: str, reviewer: str) -> None:
        self._pending.pop(patch_hash, None)
        self.record("PatchRejected", {"patch_hash": patch_hash, "stage": "approval",
                                      "reason": reason, "by": reviewer})
