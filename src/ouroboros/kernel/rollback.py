"""Planning a rollback: the stored inverses of later patches, newest first.

History is never rewritten: a rollback is new patches whose ops are the exact inverses
recorded when the originals were applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ouroboros.kernel.canonical import content_hash
from ouroboros.kernel.errors import NotFound, UsageError
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import KernelState, patch_from_envelope

if TYPE_CHECKING:
    from ouroboros.kernel.runtime import Runtime

#: A patch hash or a prefix of one: 4 to 64 hex digits (after an optional ``sha256:``);
#: a shorter prefix names whatever patch happens to start with it (as `ouro approve`).
_HEX_PREFIX = re.compile(r"[0-9a-f]{4,64}")


def _inverse_patch(payload: dict[str, object], reason: str, state: KernelState) -> Patch:
    envelope = payload["envelope"]
    assert isinstance(envelope, dict)
    original = patch_from_envelope(envelope)
    # Undoing a change of type restores the earlier type's value: the inverse is of that
    # type (its schema and tests fit the value), and the fold gives the target that type.
    ptype = state.replaced_types.get(str(payload["patch_hash"]), original["type"])
    ledger = state.ledger_id
    return Patch.from_dict({
        "type": ptype, "target": original["target"], "base": payload["result"],
        "op": payload["inverse"], "reasoning": reason, "test_requirements": [],
        "author": "rollback", "created": original["created"], "ledger": ledger})


def plan_rollback(rt: Runtime, state: KernelState, *, to: int | None,
                  patch: str | None) -> Iterator[tuple[Patch, str]]:
    if (to is None) == (patch is None):
        raise UsageError("give exactly one of --to SEQ or --patch HASH")
    if to is not None:
        if to < 0 or to > state.seq:
            raise NotFound(f"no event {to} in the ledger (head is {state.seq})")
        applied = [e for e in rt.log(kind="PatchApplied", since=to + 1)]
        for ev in reversed(applied):
            yield (_inverse_patch(ev.payload, f"rollback to seq {to}: undo {ev.payload['patch_hash']}",
                                  state),
                   str(ev.payload["patch_hash"]))
        return
    assert patch is not None
    digits = patch.removeprefix("sha256:").lower()
    if not _HEX_PREFIX.fullmatch(digits):
        raise UsageError(f"--patch {patch[:80]!r} is not a patch hash or a prefix of one",
                         "give at least 4 hex digits from `ouro log --kind PatchApplied`")
    ident = "sha256:" + digits
    matches = [h for h in state.find_applied(ident) if state.live_seq(h) is not None]
    if len(matches) != 1:
        raise NotFound(f"{len(matches)} applied patches match {ident}",
                       "give the full hash from `ouro log --kind PatchApplied`")
    seq = state.live_seq(matches[0])
    assert seq is not None
    ev = rt.log(since=seq, limit=1)[0]
    target = str(ev.payload["target"])
    if content_hash(state.values.get(target)) != ev.payload["result"]:
        raise UsageError(f"{target!r} changed after patch {matches[0][:19]}…",
                         "roll back to a sequence number with --to instead")
    yield _inverse_patch(ev.payload, f"rollback of {matches[0]}", state), matches[0]
