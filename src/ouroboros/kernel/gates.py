"""Gates, in order: signature → breaker → schema → test → audit → approval.

Each gate is a small object with ``name`` and ``check(submission) -> GateResult``; the
pipeline stops at the first rejection or deferral. Gates are pluggable: a Runtime takes
any sequence of them. A gate that raises is a rejection at that gate, never a traceback.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ouroboros.kernel.breakers import breaker_subjects, gates_config, label, paused_until
from ouroboros.kernel.clock import parse_iso
from ouroboros.kernel.dsse import SignatureCheck, check_signatures
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.once import once
from ouroboros.kernel.ops import apply_op, inverse_of
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.trust import (
    GATES_TARGET,
    SCHEMAS_TARGET,
    TRUST_TARGET,
    Authorisation,
    authorise,
    policy_view,
)
from ouroboros.kernel.types import PatchType, TestContext, TypeRegistry
from ouroboros.storage.ledger import PatchRecord

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope

    from ouroboros.kernel.audit import RegoAudit

Status = Literal["accepted", "rejected", "deferred"]
#: How a stale-base rejection's reason begins (compare-and-swap loops retry on it).
STALE_BASE = "stale base"


@dataclass(frozen=True)
class GateResult:
    status: Status
    reason: str = ""
    #: Whether a rejection counts against the signers' circuit breakers. Reasons anyone can
    #: provoke with a genuine envelope (replaying it late, into another ledger, after a
    #: race) are not the signers' doing and count against no one.
    charge: bool = True

    @classmethod
    def accepted(cls) -> GateResult:
        return _ACCEPTED  # immutable, so one instance serves every gate

    @classmethod
    def rejected(cls, reason: str, *, charge: bool = True) -> GateResult:
        return cls("rejected", reason, charge)

    @classmethod
    def deferred(cls, needs: str) -> GateResult:
        return cls("deferred", needs)


_ACCEPTED = GateResult("accepted")


@dataclass
class Submission:
    """Everything the gates learn about one envelope, filled in as they pass."""

    envelope: Envelope
    patch_hash: str
    patch: Patch | None
    parse_error: str | None
    state: KernelState
    registry: TypeRegistry
    now: datetime
    approved: bool = False
    #: Key ids whose approvals (recorded, and the one completing them) let this patch
    #: through; a grant in it counts when one of them holds the 'grant' right.
    approvers: frozenset[str] = frozenset()
    rollback: bool = False
    signatures: SignatureCheck | None = None
    auth: Authorisation | None = None
    #: Breaker subjects of the verified signatures (see ``breaker_subjects``).
    subjects: tuple[str, ...] = ()
    patch_type: PatchType | None = None
    old_value: Any = None
    new_value: Any = None
    inverse: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    #: Decide as if the index had no entry for this patch, without asking it: the append
    #: then stores nothing if it has one (``unrecorded``), and the caller decides again.
    assume_unrecorded: bool = False
    _context: TestContext | None = None

    @once
    def record(self) -> PatchRecord | None:
        """The patch index's entry for this patch, looked up once per submission."""
        if self.assume_unrecorded:
            return None
        return self.state.index.record(self.patch_hash)

    def context(self) -> TestContext:
        """One context per submission, so canonical bytes are computed once for all gates."""
        assert self.patch is not None
        if self._context is None:
            self._context = TestContext(self.patch, self.old_value, self.new_value,
                                        self.inverse, self.state.values, self.schema,
                                        None if self.rollback else self.now)
        return self._context


class Gate(Protocol):
    name: str

    def check(self, sub: Submission) -> GateResult: ...


class SignatureGate:
    """Every signature must verify over the DSSE PAE, no signer may be revoked, and the
    valid ones must satisfy the trust policy for this patch's type and target."""

    name = "signature"

    def check(self, sub: Submission) -> GateResult:
        policy = sub.state.values[TRUST_TARGET]
        if not sub.envelope.signatures:
            return GateResult.rejected("the envelope has no signature; sign it with "
                                       "`ouro patch sign FILE --key NAME`")
        revoked = policy.get("revoked")
        gone = sorted(k for k in sub.envelope.signatures if k in revoked) if revoked else ()
        if gone:
            r = revoked[gone[0]]
            return GateResult.rejected(
                f"key {r.get('name', gone[0][:12])} ({gone[0][:12]}) was revoked at {r['at']}"
                + (f": {r['reason']}" if r.get("reason") else ""))
        view = policy_view(policy)
        sigs = check_signatures(sub.envelope, view.public)
        sub.signatures = sigs
        if sigs.invalid:
            bad = ", ".join(sorted(k[:12] for k in sigs.invalid))
            return GateResult.rejected(f"signature by key {bad} does not verify: the envelope "
                                       "was tampered with or signed over other bytes",
                                       charge=False)
        if not sigs.valid:
            unknown = ", ".join(sorted(k[:12] for k in sigs.unknown))
            return GateResult.rejected(f"untrusted key {unknown}: no signature is by a key in "
                                       "the trust policy (grant it with `ouro trust grant`)")
        if sub.patch is None:
            return GateResult.accepted()  # the schema gate names what is wrong with it
        sub.subjects = breaker_subjects(sigs.valid, sub.state.runtime_key.get("id", ""),
                                        sub.patch.author)
        ptype = sub.registry.get(sub.patch.type)
        root_only = ptype.root_only if ptype else False
        auth = view.authorise(sub.patch.type, sub.patch.target, root_only, sigs.valid, sub.now)
        sub.auth = auth
        return GateResult.accepted() if auth.ok else GateResult.rejected(auth.reason)


class BreakerGate:
    """A signer whose breaker tripped is refused until the pause ends or root resumes it.
    Rollbacks are never paused: they are how an operator recovers."""

    name = "breaker"

    def check(self, sub: Submission) -> GateResult:
        if sub.rollback:
            return GateResult.accepted()
        for subject in sub.subjects:
            until = paused_until(sub.state, subject, sub.now)
            if until is not None:
                who = label(sub.state, subject)
                return GateResult.rejected(
                    f"{who} is paused until {until} after repeated rejections "
                    f"(`ouro breakers resume {who}` lifts it with the root key)", charge=False)
        return GateResult.accepted()


def _effective_schema(sub: Submission, ptype: PatchType) -> dict[str, Any]:
    """The registered schema as the state holds it, not a copy: the validator cache hits
    by identity for as long as that value stands (no one mutates a state value: a new
    ``kernel/schemas`` value is a new object, so it misses and is compiled afresh)."""
    registered = sub.state.values.get(SCHEMAS_TARGET) or {}
    matches = [g for g in registered if fnmatch.fnmatchcase(sub.patch.target, g)] if sub.patch else []
    if matches:
        schema: dict[str, Any] = registered[max(matches, key=len)]
        return schema
    return ptype.value_schema


def _same_kind(registry: TypeRegistry, held: str, ptype: PatchType) -> bool:
    other = registry.get(held)
    return other is not None and other.family == ptype.family


#: Why every patch but the one setting ``kernel/gates`` again is refused while it is absent.
GATES_MISSING = (f"{GATES_TARGET} has no value (a delete applied before such deletes were "
                 "refused): every patch is refused until a root-signed gates patch sets it "
                 f"again: `ouro patch new --type gates --target {GATES_TARGET} --value FILE`, "
                 "or `ouro rollback --patch` the delete")


class SchemaGate:
    """Bound to this ledger and not expired; a known type allowed on this target; not
    applied already; a fresh base; and an op that applies."""

    name = "schema"

    def check(self, sub: Submission) -> GateResult:
        if sub.patch is None:
            return GateResult.rejected(sub.parse_error or "payload is not a patch")
        patch = sub.patch
        if patch.ledger != sub.state.ledger_id:
            return GateResult.rejected(
                f"the patch is bound to ledger {patch.ledger[:19]}…, not this one "
                f"({sub.state.ledger_id[:19]}…): it was signed for another workspace",
                charge=False)
        if patch.expires is not None and parse_iso(patch.expires) <= sub.now:
            return GateResult.rejected(f"the patch expired at {patch.expires}", charge=False)
        ptype = sub.registry.get(patch.type)
        if ptype is None:
            known = ", ".join(sorted(sub.registry.types))
            return GateResult.rejected(f"unknown patch type {patch.type!r} (known: {known})")
        if not ptype.allows_target(patch.target):
            return GateResult.rejected(f"{patch.type} patches may only target "
                                       f"{', '.join(ptype.targets)}, not {patch.target!r}")
        sub.patch_type = ptype
        if GATES_TARGET not in sub.state.values and patch.target != GATES_TARGET:
            # Only a ledger from before deletes of it were refused (below) lacks it: without
            # its approval rules and audit settings nothing can be judged, so nothing else
            # applies until it is set again. Nobody's doing now: nothing is charged.
            return GateResult.rejected(GATES_MISSING, charge=False)
        held = sub.state.types.get(patch.target)
        if held is not None and held != patch.type and not sub.rollback \
                and not _same_kind(sub.registry, held, ptype) \
                and not (sub.auth is not None and sub.auth.root):
            # A delegation for one type must not rewrite what another type set (a routing
            # patch replacing a prompt); a rollback restores an earlier value and type.
            return GateResult.rejected(
                f"{patch.target!r} was set by a {held} patch: a {patch.type} patch may not "
                "replace or delete it (only the root key(s) may change a target's type)")
        record = sub.record
        if record is not None and record.applied is not None:
            seq, undone = record.applied, record.undone
            if undone is None:
                return GateResult.rejected(f"patch was already applied at seq {seq}",
                                           charge=False)
            if not sub.rollback:  # only a rollback may redo what a rollback undid
                return GateResult.rejected(
                    f"patch was applied at seq {seq} and rolled back at seq {undone}; an "
                    "undone patch is not applied again: make a new patch", charge=False)
        old = sub.state.values.get(patch.target)
        current = sub.state.target_hash(patch.target)
        if sub.state.rolled_back.get(patch.target) == sub.patch_hash and not sub.rollback:
            # The signed state says the target's last change undid this very patch; the
            # (unsigned) index agreeing or not does not matter.
            return GateResult.rejected(
                f"patch was rolled back by the last change of {patch.target!r}; an undone "
                "patch is not applied again: make a new patch"
                + ("" if record is not None else
                   " (the patch index has no entry for it: it was tampered with; run "
                   "`ouro verify`)"), charge=False)
        if patch.base != current:
            return GateResult.rejected(f"{STALE_BASE}: the patch was made against {patch.base[:19]}… "
                                       f"but {patch.target!r} is now {current[:19]}…; "
                                       "re-create the patch against the current value",
                                       charge=False)
        try:
            new = apply_op(patch.op, old)
        except InvalidPatch as e:
            return GateResult.rejected(e.message)
        if new is None and patch.target in (TRUST_TARGET, GATES_TARGET):
            # every submit reads both: without the gate config no rejection could be made
            return GateResult.rejected(f"{patch.target} cannot be deleted: the kernel reads "
                                       "it on every submit; set a new value instead")
        sub.old_value, sub.new_value = old, new
        sub.inverse = inverse_of(patch.op, old, new)
        sub.schema = _effective_schema(sub, ptype)
        return GateResult.accepted()


class TestGate:
    """Mandatory: the type's default tests plus every named requirement must pass."""

    name = "test"

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None and sub.patch_type is not None
        names = (sub.patch_type.default_tests if not sub.patch.test_requirements else
                 list(dict.fromkeys([*sub.patch_type.default_tests,
                                     *sub.patch.test_requirements])))
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
        self._rego = rego
        self._facts: Callable[..., dict[str, Any]] | None = None

    @property
    def rego(self) -> RegoAudit:
        """The policy evaluator, made on first use: the audit module (URL parser, text
        scanners) is not imported by commands that only read the ledger (`ouro state`)."""
        if self._rego is None:
            from ouroboros.kernel.audit import RegoAudit

            self._rego = RegoAudit()
        return self._rego

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None and sub.patch_type is not None
        auth = sub.auth or Authorisation(False, False, frozenset())
        rights = auth.rights
        if sub.approved and sub.approvers and "grant" not in rights:
            # A person who holds the 'grant' right for this type and target and approved
            # the patch grants what it asks for; an approver without it grants nothing.
            by_approvers = authorise(sub.state.values[TRUST_TARGET], sub.patch.type,
                                     sub.patch.target, False, sub.approvers, sub.now)
            rights = rights | (by_approvers.rights & {"grant"})
        reasons = self._deny(sub, auth.root, rights)
        if reasons and not sub.approved and "grant" not in rights \
                and approval_rule(sub.state, sub.patch) is not None \
                and not self._deny(sub, auth.root, rights | {"grant"}):
            # Only the grant stands in the way and a person reviews this patch anyway:
            # wait for an approver who may grant, rather than refuse outright.
            return GateResult.deferred(
                f"approval: {sub.patch.type} patches to {sub.patch.target} that grant "
                f"capabilities need approval by a key holding the 'grant' right "
                f"(`ouro approve`); {reasons[0]}")
        return GateResult.rejected("; ".join(reasons)) if reasons else GateResult.accepted()

    def _deny(self, sub: Submission, root: bool, rights: frozenset[str]) -> list[str]:
        assert sub.patch is not None and sub.patch_type is not None
        config = gates_config(sub.state)["audit"]
        ctx = sub.context()
        if self._facts is None:  # imported here for the reason `rego` is made on first use
            from ouroboros.kernel.audit import audit_input

            self._facts = audit_input
        facts = self._facts(patch_type=sub.patch.type, target=sub.patch.target,
                           author=sub.patch.author, reasoning=sub.patch.reasoning,
                           old=sub.old_value, new=sub.new_value, root=root,
                           rights=rights, new_bytes=ctx.new_bytes,
                           markers=config["injection_markers"])
        reasons = self.rego.deny(config, facts)
        if sub.patch_type.audit is not None:
            try:
                reasons += sub.patch_type.audit(ctx)
            except Exception as e:
                reasons.append(f"{sub.patch.type} audit crashed: {type(e).__name__}: {e}")
        return reasons


def approval_rule(state: KernelState, patch: Patch) -> dict[str, Any] | None:
    """The first approval rule of ``kernel/gates`` that covers this patch, if any."""
    for rule in gates_config(state)["approval"]:
        if patch.type in rule["types"] and any(
                fnmatch.fnmatchcase(patch.target, g) for g in rule["targets"]):
            return dict(rule)
    return None


class ApprovalGate:
    """Defers patches whose type and target match an approval rule until enough humans
    (``approvals``, default 1, counted by distinct public keys) approve. A rollback of
    such a patch cannot wait: it passes only signed by the root threshold."""

    name = "approval"

    def check(self, sub: Submission) -> GateResult:
        assert sub.patch is not None
        if sub.approved:
            return GateResult.accepted()
        rule = approval_rule(sub.state, sub.patch)
        if sub.rollback:
            # A rollback is one atomic append and cannot wait: the root threshold's
            # signatures stand for the person a reviewed target needs; no other key's do.
            if rule is None or (sub.auth is not None and sub.auth.root):
                return GateResult.accepted()
            return GateResult.rejected(
                f"approval: {sub.patch.type} patches to {sub.patch.target} need approval, "
                "so a rollback of one must be signed by the root key(s)")
        if rule is not None:
            n = int(rule.get("approvals", 1))
            return GateResult.deferred(f"approval: {sub.patch.type} patches to "
                                       f"{sub.patch.target} need {n} approval(s) "
                                       "(`ouro approve`)")
        return GateResult.accepted()


def default_gates(rego: RegoAudit | None = None) -> list[Gate]:
    return [SignatureGate(), BreakerGate(), SchemaGate(), TestGate(), AuditGate(rego),
            ApprovalGate()]


def run_gates(gates: list[Gate], sub: Submission) -> tuple[str, GateResult]:
    """Run the gates in order; return the deciding stage (or ``"apply"``) and its result.
    A gate that raises rejects the patch at that gate (fail closed); the failure counts
    against no one, since it says nothing about what the signers did."""
    for gate in gates:
        try:
            result = gate.check(sub)
        except Exception as e:
            return gate.name, GateResult.rejected(
                f"the {gate.name} gate failed: {type(e).__name__}: {e}", charge=False)
        if result.status != "accepted":
            return gate.name, result
    return "apply", GateResult.accepted()
