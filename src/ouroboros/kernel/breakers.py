"""Circuit breakers, keyed to who verifiably signed, not to what a patch says about itself.

A subject is a verified signing key id, or ``<runtime key id>/<author>`` for the runtime
key, which signs for every in-process capability (each names itself). A rejection is
charged to the subjects of a submission only when it is the signers' doing:

- nothing is charged before the signatures verified (unsigned, forged, unknown or revoked
  keys): an outsider cannot pause anyone by naming them;
- nothing is charged for reasons anyone can provoke with a genuine envelope: replayed into
  another ledger or after it expired, replayed after it was applied, a stale base after a
  race, a gate that crashed;
- a patch hash is charged at most once, and never once it was applied: replaying an old
  rejected envelope costs its signers nothing.

``threshold`` consecutive charged rejections pause the subject for ``cooldown_hours``; an
applied patch resets its signers' counts; the root threshold can resume a subject early.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ouroboros.kernel.clock import iso, parse_iso
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.trust import GATES_TARGET, TRUST_TARGET, key_names

if TYPE_CHECKING:
    from ouroboros.kernel.gates import GateResult, Submission

Item = tuple[str, dict[str, Any]]


def breaker_subjects(valid: frozenset[str], runtime_key_id: str, author: str) -> tuple[str, ...]:
    """The subjects of a set of verified signing keys: each key id, and for the runtime
    key ``<runtime key id>/<author>`` (any other key's patches may claim any author:
    renaming does not escape a pause)."""
    return tuple(sorted(f"{k}/{author}" if k == runtime_key_id else k for k in valid))


def charges(sub: Submission, result: GateResult) -> list[str]:
    """Whom a rejection of ``sub`` counts against (see the module docstring)."""
    sigs = sub.signatures
    if not result.charge or sigs is None or sigs.invalid or not sub.subjects:
        return []
    record = sub.record
    if record is not None and (record.charged is not None or record.applied is not None):
        return []
    return list(sub.subjects)


#: The breaker part of a new workspace's `kernel/gates`.
DEFAULT_BREAKER_CONFIG: dict[str, Any] = {"threshold": 3, "cooldown_hours": 48}


def gates_config(state: KernelState) -> dict[str, Any]:
    """``kernel/gates``; a ledger written before its deletion was refused may hold none:
    then the defaults, so a rejection can still be recorded (the schema gate refuses every
    patch but the one that sets it again). Read on every submit: the value itself, not a
    copy (callers only read it)."""
    config: dict[str, Any] | None = state.values.get(GATES_TARGET)
    if config is not None:
        return config
    from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG  # audit imports much; rarely

    return {"approval": [], "audit": dict(DEFAULT_AUDIT_CONFIG),
            "breaker": dict(DEFAULT_BREAKER_CONFIG)}


def rejection_items(state: KernelState, now: datetime, patch_hash: str, stage: str,
                    reason: str, author: str, charged: list[str], **extra: str) -> list[Item]:
    """The ``PatchRejected`` event, and a ``BreakerTripped`` for each subject it trips."""
    items: list[Item] = [("PatchRejected", {"patch_hash": patch_hash, "stage": stage,
                                            "reason": reason, "author": author,
                                            "charged": charged, **extra})]
    config = gates_config(state)["breaker"]
    for subject in charged:
        count = int(state.breaker(subject).get("rejections", 0)) + 1
        if count >= int(config["threshold"]):
            until = now + timedelta(hours=float(config["cooldown_hours"]))
            items.append(("BreakerTripped", {"subject": subject, "until": iso(until),
                                             "reason": f"{count} consecutive rejections"}))
    return items


def label(state: KernelState, subject: str) -> str:
    """A subject as people name it: ``alice``, ``runtime/improve``."""
    key, _, author = subject.partition("/")
    name = key_names(state.values[TRUST_TARGET]).get(key, key[:12])
    return f"{name}/{author}" if author else name


def resolve(state: KernelState, who: str) -> str:
    """The subject ``who`` names: a subject itself, ``NAME/AUTHOR``, a key name in the trust
    policy, a key id (or a prefix of 8+ hex digits), else an author under the runtime key."""
    if who in state.breakers:
        return who
    policy = state.values[TRUST_TARGET]
    by_name = {name: kid for kid, name in key_names(policy).items()}
    name, sep, author = who.partition("/")
    if sep:
        kid = by_name.get(name, name)
        return f"{kid}/{author}"
    if who in by_name:
        return by_name[who]
    if len(who) >= 8 and all(c in "0123456789abcdef" for c in who):
        ids: set[str] = {str(k).partition("/")[0] for k in (*policy["keys"], *state.breakers)
                         if str(k).startswith(who)}
        if len(ids) == 1:
            return ids.pop()
    return f"{state.runtime_key.get('id', '')}/{who}"


def paused_until(state: KernelState, subject: str, now: datetime) -> str | None:
    until = state.breaker(subject).get("paused_until")
    if until and parse_iso(str(until)) > now:
        return str(until)
    return None
