"""The improvement loop's one seam to the kernel: proposals are ``file`` patches.

A ``file`` patch targets ``improve/proposals/<id>``; its value names the proposal, the
target repository, the pinned base commit, the branch, and the unified diff (kept in
the content-addressed blob store, so the ledger holds its hash). Its gates are the
loop's: the **test** gate is the validation pipeline on the proposal branch (run
again at approval, when it also checks the branch still merges into ``main``), the
**audit** gate is the policy tests, the **approval** gate always defers ``file``
patches to a human (the kernel's default), and **apply** is the merge into ``main``
(the type's effect). The kernel's per-author breaker (3 consecutive rejections pause
the author for 48 h) is the seed's analysis backoff; every status change is also a
ledger event recorded here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ouroboros.capabilities.improve.proposals.state import STATE_VALUE_SCHEMA
from ouroboros.kernel import PatchType, Runtime, SubmitOutcome, TestContext, TestOutcome
from ouroboros.kernel.clock import parse_iso

FILE_TYPE = "file"
VALIDATION_TEST = "improve.validation"
AUTHOR = "improve"
TARGET_PREFIX = "improve/proposals/"

#: JSON Schema of a ``file`` patch value against the target repository.
GIT_VALUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["proposal", "repository", "base", "branch", "diff", "files", "category"],
    "additionalProperties": False,
    "properties": {
        "proposal": {"type": "string", "pattern": "^[0-9a-f]{6,32}$"},
        "repository": {"type": "string", "minLength": 1},
        "base": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "branch": {"type": "string", "pattern": "^ouro/proposal-[0-9a-f]{6,32}$"},
        "diff": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "files": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "category": {"enum": ["bugfix", "optimization", "enhancement"]},
    },
}

#: JSON Schema of a ``file`` patch value (the kernel's schema gate checks it): a diff
#: against the target repository, or a change to the kernel's own state.
FILE_VALUE_SCHEMA: dict[str, Any] = {"oneOf": [GIT_VALUE_SCHEMA, STATE_VALUE_SCHEMA]}


class Gates(Protocol):
    """What the loop gives the kernel for ``file`` patches."""

    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]: ...

    def audit(self, value: Mapping[str, Any]) -> list[str]: ...

    def effect(self, value: Mapping[str, Any]) -> None: ...

    def rolled_back(self, proposal_id: str) -> None: ...


class Governance:
    """The kernel calls the loop needs, in one place, against a :class:`Runtime`."""

    def __init__(self, rt: Runtime, approver_key: str = "root") -> None:
        self.rt = rt
        self.approver_key = approver_key

    def bind(self, gates: Gates) -> None:
        """Register the ``file`` patch type and its validation test with the kernel."""

        def validation(ctx: TestContext) -> TestOutcome:
            if ctx.new_value is None:  # a rollback removes the record; git is reverted apart
                return TestOutcome(True, "nothing to validate")
            ok, detail = gates.test(ctx.new_value)
            return TestOutcome(ok, detail)

        def audit(ctx: TestContext) -> list[str]:
            return [] if ctx.new_value is None else gates.audit(ctx.new_value)

        def effect(patch: Any, value: Any) -> None:
            if value is not None:
                gates.effect(value)
            elif str(patch.target).startswith(TARGET_PREFIX):  # a rollback removed the record
                gates.rolled_back(str(patch.target)[len(TARGET_PREFIX):])

        self.rt.registry.register_type(PatchType(
            name=FILE_TYPE,
            value_schema=FILE_VALUE_SCHEMA,
            default_tests=("schema", "roundtrip", "replay", VALIDATION_TEST),
            audit=audit,
            effect=effect,
            targets=(TARGET_PREFIX + "*",),
            description="a unified diff against the improvement loop's target git repository",
        ))
        self.rt.registry.register_test(VALIDATION_TEST, validation)

    # -- patches ----------------------------------------------------------------------
    def submit(self, value: dict[str, Any], diff: str, reasoning: str) -> SubmitOutcome:
        """Propose the ``file`` patch; the diff text goes to the blob store first."""
        value = {**value, "diff": self.rt.blobs.put(diff.encode("utf-8"))}
        return self.rt.propose_and_submit(
            type=FILE_TYPE, target=TARGET_PREFIX + str(value["proposal"]), value=value,
            reasoning=reasoning, tests=[VALIDATION_TEST], author=AUTHOR)

    def submit_state(self, value: dict[str, Any], reasoning: str) -> SubmitOutcome:
        """Propose a change to the kernel's state, wrapped as a ``file`` patch (so a human
        approves it); its effect submits the inner patch."""
        return self.rt.propose_and_submit(
            type=FILE_TYPE, target=TARGET_PREFIX + str(value["proposal"]), value=value,
            reasoning=reasoning, tests=[VALIDATION_TEST], author=AUTHOR)

    def submit_inner(self, value: Mapping[str, Any], reasoning: str) -> SubmitOutcome:
        """The approved state change itself, through every gate (runtime key, author
        ``improve``)."""
        return self.rt.propose_and_submit(
            type=str(value["type"]), target=str(value["target"]), value=value["value"],
            reasoning=reasoning, author=AUTHOR)

    def may_sign(self, patch_type: str, target: str) -> str | None:
        """Why the runtime key may not sign ``patch_type`` for ``target``, or None."""
        from ouroboros.kernel.trust import TRUST_TARGET, authorise

        policy = self.rt.refresh().values[TRUST_TARGET]
        verdict = authorise(policy, patch_type, target, False,
                            frozenset({self.rt.signer.key_id}), self.rt.clock.now())
        return None if verdict.ok else verdict.reason

    def state_hash(self, target: str) -> str:
        return self.rt.refresh().target_hash(target)

    def state_values(self) -> dict[str, Any]:
        return dict(self.rt.refresh().values)

    def diff_of(self, value: Mapping[str, Any]) -> str:
        return self.rt.blobs.get(str(value["diff"])).decode("utf-8")

    def approve(self, patch_hash: str) -> SubmitOutcome:
        return self.rt.approve(patch_hash, key=self.approver_key)

    def reject(self, patch_hash: str, reason: str) -> SubmitOutcome:
        return self.rt.reject(patch_hash, reason, key=self.approver_key)

    def is_pending(self, patch_hash: str) -> bool:
        return patch_hash in self.rt.pending()

    def pending_patch(self, patch_hash: str) -> dict[str, Any] | None:
        """The pending patch ``patch_hash`` (target, value, ...), or None when not pending."""
        from ouroboros.kernel.state import patch_from_envelope

        entry = self.rt.pending().get(patch_hash)
        return None if entry is None else patch_from_envelope(entry["envelope"])

    def is_applied(self, patch_hash: str) -> bool:
        return self.rt.applied_at(patch_hash) is not None

    def rejection(self, patch_hash: str) -> dict[str, Any] | None:
        """The kernel's latest ``PatchRejected`` payload for a patch, if any."""
        found = [e.payload for e in self.rt.log("PatchRejected")
                 if e.payload.get("patch_hash") == patch_hash]
        return found[-1] if found else None

    def value(self, proposal_id: str) -> Any:
        return self.rt.value(TARGET_PREFIX + proposal_id)

    def rollback(self, patch_hash: str) -> None:
        """Record the revert in kernel state too (the record of what is merged)."""
        self.rt.rollback(patch=patch_hash)

    # -- breaker and events -----------------------------------------------------------
    def paused_until(self, now: datetime) -> str | None:
        until = self.rt.paused_until(AUTHOR)  # the runtime key's breaker for this author
        return str(until) if until and parse_iso(str(until)) > now else None

    def resume(self) -> None:
        self.rt.resume(AUTHOR, keys=[self.approver_key])

    def record(self, kind: str, payload: dict[str, Any]) -> int:
        return self.rt.record(kind, payload)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [{"seq": e.seq, "kind": e.kind, "payload": e.payload} for e in self.rt.log(kind)]
