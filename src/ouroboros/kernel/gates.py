"""Gates, in order: signature → schema → test → audit → approval.

Each gate is a small object with ``name`` and ``check(submission) -> GateResult``; the
pipeline stops at the first rejection or deferral. Gates are pluggable: a Runtime takes
any sequence of them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ouroboros.kernel.audit import RegoAudit, audit_input
from ouroboros.kernel.dsse import SignatureCheck, check_signatures
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.ops import apply_op, inverse_of
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.trust import (
    GATES_TARGET,
    SCHEMAS_TARGET,
    TRUST_TARGET,
    Authorisation,
    authorise,
    public_keys,
)
from ouroboros.kernel.types import PatchType, TestContext, TypeRegistry

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope

Status = Literal["accepted", "rejected", "deferred"]


@dataclass(frozen=True)
class GateResult:
    status: Status
    reason: str = ""

    @classmethod
    def accepted(cls) -> GateResult:
        return cls("accepted")

    @classmethod
    def rejected(cls, reason: str) -> GateResult:
        return cls("rejected", reason)

    @classmethod
    def deferred(cls, needs: str) -> GateResult:
        return cls("deferred", needs)


@dataclass
class Submission:
    """Everything the gates learn about one envelope, filled in as they pass."""

    envelope: Envelope
    patch_hash: str
    patch: Patch | None
    parse_error: str | None
    state: KernelState
    registry: TypeRegistry
    approved: bool = False
    rollback: bool = False
    signatures: SignatureCheck | None = None
    auth: Authorisation | None = None
    patch_type: PatchType | None = None
    old_value: Any = None
    new_value: Any = None
    inverse: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    _context: TestContext | None = None

    def context(self) -> TestContext:
        """One context per submission, so canonical bytes are computed once for all gates."""
        assert self.patch is not None
        if self._context is None:
            self._context = TestContext(self.patch, self.old_value, self.new_value,
                                        self.inverse, self.state.values, self.schema)
        return self._context


class Gate(Protocol):
    name: str

    def check(self, sub: Submission) -> GateResult: ...


class SignatureGate:
    """Every signature must verify over the DSSE PAE, and the valid ones must satisfy the
    trust policy for this patch's type and target."""

    name = "signature"

    def check(self, sub: Submission) -> GateResult:
        policy = sub.state.values[TRUST_TARGET]
        if not sub.envelope.signatures:
            return GateResult.rejected("the envelope has no signature; sign it with "
                                       "`ouro patch sign FILE --key NAME`")
        sigs = check_signatures(sub.envelope, public_keys(policy))
        sub.signatures = sigs
        if sigs.invalid:
            bad = ", ".join(sorted(k[:12] for k in sigs.invalid))
            return GateResult.rejected(f"signature by key {bad} does not verify: the envelope "
                                       "was tampered with or signed over other bytes")
        if not sigs.valid:
            unknown = ", ".join(sorted(k[:12] for k in sigs.unknown))
            return GateResult.rejected(f"untrusted key {unknown}: no signature is by a key in "
                                       "the trust policy (grant it with `ouro trust grant`)")
        if sub.patch is None:
            return GateResult.accepted()  # the schema gate names what is wrong with it
        ptype = sub.registry.get(sub.patch.type)
        root_only = ptype.root_only if ptype else False
        auth = authorise(policy, sub.patch.type, sub.patch.target, root_only, sigs.valid)
        sub.auth = auth
        return GateResult.accepted() if auth.ok else GateResult.rejected(auth.reason)


def _effective_schema(sub: Submission, ptype: PatchType) -> dict[str, Any]:
    registered = sub.state.values.get(SCHEMAS_TARGET) or {}
    matches = [g for g in registered if fnmatch.fnmatchcase(sub.patch.target, g)] if sub.patch else []
    if matches:
        return dict(registered[max(matches, key=len)])
    return ptype.value_schema


class SchemaGate:
    """A known type allowed on this target, a fresh base, and an op that applies."""

    name = "schema"

    def check(self, sub: Submission) -> GateResult:
        if sub.patch is None:
            return GateResult.rejected(sub.parse_error or "payload is not a patch")
        patch = sub.patch
        ptype = sub.registry.get(patch.type)
        if ptype is None:
            known = ", ".join(sorted(sub.registry.types))
            return GateResult.rejected(f"unknown patch type {patch.type!r} (known: {known})")
        if not ptype.allows_target(patch.target):
            return GateResult.rejected(f"{patch.type} patches may only target "
                                       f"{', '.join(ptype.targets)}, not {patch.target!r}")
        sub.patch_type = ptype
        seq = sub.state.applied.get(sub.patch_hash)
        if seq is not None and not sub.rollback:
            return GateResult.rejected(f"patch was already applied at seq {seq}")
        old = sub.state.values.get(patch.target)
        current = sub.state.target_hash(patch.target)
        if patch.base != current:
            return GateResult.rejected(f"stale base: the patch was made against {patch.base[:19]}… "
                                       f"but {patch.target!r} is now {current[:19]}…; "
                                       "re-create the patch against the current value")
        try:
            new = apply_op(patch.op, old)
        except InvalidPatch as e:
            return GateResult.rejected(e.message)
        sub.old_value, sub.new_value = old, new
        sub.inverse = inverse_of(patch.op, old, new)
        sub.schema = _effective_schema(sub, ptype)
        return GateResult.accepted()


class TestGate:
    """Mandatory: the type's default tests plus every named requirement must pass."""

    name = "test"

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None and sub.patch_type is not None
        names = list(dict.fromkeys([*sub.patch_type.default_tests, *sub.patch.test_requirements]))
        unknown = [n for n in names if n not in sub.registry.tests]
        if unknown:
            return GateResult.rejected(f"unknown test {', '.join(unknown)} "
                                       f"(registered: {', '.join(sorted(sub.registry.tests))})")
        ctx = sub.context()
        for name in names:
            try:
                outcome = sub.registry.tests[name](ctx)
            except Exception as e:  # a crashing test is a failing test, never a pass
                return GateResult.rejected(f"test {name} crashed: {type(e).__name__}: {e}")
            if not outcome.ok:
                return GateResult.rejected(f"test {name} failed: {outcome.detail}")
        return GateResult.accepted()


class AuditGate:
    """Policy as data (Rego) plus any audit rules the patch type brings."""

    name = "audit"

    def __init__(self, rego: RegoAudit | None = None) -> None:
        self.rego = rego or RegoAudit()

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None and sub.patch_type is not None
        auth = sub.auth or Authorisation(False, False, frozenset())
        config = sub.state.values[GATES_TARGET]["audit"]
        ctx = sub.context()
        facts = audit_input(patch_type=sub.patch.type, target=sub.patch.target,
                            author=sub.patch.author, reasoning=sub.patch.reasoning,
                            old=sub.old_value, new=sub.new_value, root=auth.root,
                            rights=auth.rights, new_bytes=ctx.new_bytes,
                            markers=config["injection_markers"])
        reasons = self.rego.deny(config, facts)
        if sub.patch_type.audit is not None:
            try:
                reasons += sub.patch_type.audit(ctx)
            except Exception as e:
                reasons.append(f"{sub.patch.type} audit crashed: {type(e).__name__}: {e}")
        return GateResult.rejected("; ".join(reasons)) if reasons else GateResult.accepted()


class ApprovalGate:
    """Defers patches whose type and target match an approval rule until a human approves."""

    name = "approval"

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None
        if sub.approved or sub.rollback:
            return GateResult.accepted()
        for rule in sub.state.values[GATES_TARGET]["approval"]:
            if sub.patch.type in rule["types"] and any(
                    fnmatch.fnmatchcase(sub.patch.target, g) for g in rule["targets"]):
                return GateResult.deferred(f"approval: {sub.patch.type} patches to "
                                           f"{sub.patch.target} need `ouro approve`")
        return GateResult.accepted()


def default_gates(rego: RegoAudit | None = None) -> list[Gate]:
    return [SignatureGate(), SchemaGate(), TestGate(), AuditGate(rego), ApprovalGate()]


def run_gates(gates: list[Gate], sub: Submission) -> tuple[str, GateResult]:
    """Run the gates in order; return the deciding stage (or ``"apply"``) and its result."""
    for gate in gates:
        result = gate.check(sub)
        if result.status != "accepted":
            return gate.name, result
    return "apply", GateResult.accepted()
