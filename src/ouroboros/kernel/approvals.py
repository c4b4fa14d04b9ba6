"""Who may approve (or reject) a pending patch, and when enough have.

The ``approve`` right is scoped like signing: a root key may approve anything; any other
key only patches whose type and target its own live delegation (with the ``approve``
right) covers. A signer of the patch may not approve it unless the approval rule says
``self_approval: true``. An approval rule may ask for ``approvals: N``; they are counted
by distinct public keys, so one key cannot approve twice under two names, and only while
each approver still may approve: an approval by a key revoked since, or whose delegation
has expired or no longer covers the patch, counts for nothing at the last approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ouroboros.kernel.dsse import check_signatures, envelope_from_dict
from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.gates import approval_rule
from ouroboros.kernel.keys import Signer
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import KernelState, patch_from_envelope
from ouroboros.kernel.trust import TRUST_TARGET, approval_statement, may_approve


@dataclass(frozen=True)
class ApprovalPlan:
    patch: Patch
    item: tuple[str, dict[str, Any]]
    have: int
    needed: int

    @property
    def complete(self) -> bool:
        return self.have >= self.needed


def check_reviewer(state: KernelState, signer: Signer, name: str, patch: Patch,
                   now: datetime) -> None:
    """Raise ``UsageError`` unless ``signer`` may approve or reject ``patch``."""
    reason = may_approve(state.values[TRUST_TARGET], signer.key_id, patch.type, patch.target,
                         now)
    if reason is not None:
        raise UsageError(f"key {name!r} may not approve or reject this patch: {reason}",
                         "use a root key, or one whose delegation has the 'approve' right "
                         "for this type and target")


def plan_approval(state: KernelState, patch_hash: str, entry: dict[str, Any], signer: Signer,
                  name: str, now: datetime) -> ApprovalPlan:
    """The ``PatchApproved`` event ``signer`` adds, and whether it completes the approvals."""
    patch = Patch.from_dict(patch_from_envelope(entry["envelope"]))
    check_reviewer(state, signer, name, patch, now)
    rule = approval_rule(state, patch) or {}
    policy = state.values[TRUST_TARGET]
    keys = policy["keys"]
    approvals: dict[str, str] = entry.get("approvals", {})
    signed_by = {keys[k]["public"] for k in entry.get("signers", []) if k in keys}
    # The pending entry lists the signatures valid at submission; a co-signer trusted only
    # since is a signer too: ask the envelope itself about this approver and earlier ones.
    reviewers = {kid: public for public, kid in approvals.items()}
    reviewers[signer.key_id] = signer.public_hex
    envelope = envelope_from_dict(entry["envelope"])
    signed_by |= {reviewers[k] for k in check_signatures(envelope, reviewers).valid}
    self_ok = bool(rule.get("self_approval", False))
    if signer.public_hex in signed_by and not self_ok:
        raise UsageError(f"key {name!r} signed this patch: approving one's own patch is refused",
                         "ask another approver, or set self_approval in the kernel/gates "
                         "approval rule")
    if signer.public_hex in approvals:
        raise UsageError(f"key {name!r} has already approved this patch",
                         "a second approval must come from a different key")
    item = ("PatchApproved", {
        "patch_hash": patch_hash, "approver": signer.key_id, "public": signer.public_hex,
        "signature": signer.sign(approval_statement(patch_hash)).hex()})
    # Rights are judged now, not when each approval was given (a key may have been revoked
    # or its delegation expired or narrowed in between).
    live = [public for public, kid in approvals.items()
            if may_approve(policy, kid, patch.type, patch.target, now) is None
            and (self_ok or public not in signed_by)]
    return ApprovalPlan(patch, item, len(live) + 1, int(rule.get("approvals", 1)))
