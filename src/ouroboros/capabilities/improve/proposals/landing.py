"""Landing a proposal on the target: merge (or follow a merge done on the forge), push,
deploy, open the monitoring window; and the automatic revert, pushed."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ouroboros.capabilities.improve.proposals.monitor import Check
from ouroboros.capabilities.improve.proposals.notify import Message
from ouroboros.capabilities.improve.proposals.proposal import Proposal
from ouroboros.capabilities.improve.proposals.publish import run_deploy
from ouroboros.capabilities.improve.proposals.remote import sync_main
from ouroboros.capabilities.improve.proposals.repo import GitError
from ouroboros.kernel import OuroError

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop

NO_BRANCH = "-"  # a proposal on kernel state has no branch


def merge(loop: ImproveLoop, proposal: Proposal) -> None:
    """The ``file`` type's effect for a repository proposal: merge into the target branch
    (or follow the remote, when a human merged the pull request), push, deploy, monitor.
    Any refusal on the way fails the proposal (or reverts it, once merged)."""
    now = loop.clock()
    before = loop.repo.head()
    remote_merge = loop._remote_merges.pop(proposal.id, None)
    try:
        if remote_merge:  # a human merged on the forge: main follows the remote
            sync_main(loop.repo)
            merged = remote_merge
        else:
            merged = loop.repo.merge(proposal.branch,
                                      f"Merge proposal {proposal.id}: {proposal.title}")
    except GitError as e:
        _unland(loop, proposal, f"{e.action} failed: {e.reason}")
        return
    refused = None if remote_merge else loop.publisher.push_main(before)
    if refused:
        _unland(loop, proposal, refused)
        return
    where = f"{loop.repo.main} as {merged}"
    done = replace(proposal.transition("implemented"), merge_commit=merged).logged(
        now, f"merged into {where}" + (" (pushed)" if loop.publisher.enabled else ""))
    deploy = run_deploy(loop.settings.deploy, loop.repo.path, proposal.id, merged)
    if loop.settings.deploy.command:
        done = done.logged(now, deploy.detail if deploy.ok else
                           f"DEPLOY FAILED: {deploy.detail}")
    if not deploy.ok:
        loop._save(done, proposal.status, f"merged as {merged}")
        loop._revert(done, None, f"deploy failed: {deploy.detail}")
        return
    done = done.logged(now, f"monitoring until {now + loop.monitor.window:%H:%M}Z")
    # the window before the file says "implemented": a crash between them leaves the
    # proposal approved, and the next sync lands it again (the merge is then a no-op);
    # the other order left a merged change nobody monitored, never auto-reverted
    loop.monitor.open(proposal.id, now, proposal.key)
    loop._save(done, proposal.status, f"merged as {merged}")


def _unland(loop: ImproveLoop, proposal: Proposal, reason: str) -> None:
    """Nothing landed (the merge or its push was refused, main is back where it was) but
    the kernel already applied the patch: fail the proposal and roll the patch back, so the
    kernel's record of what is merged says what the target has (a failed proposal with an
    applied patch would read as merged to `ouro log` and every consumer of kernel state)."""
    failed = loop._fail(proposal, reason)
    try:  # after the status change: the rollback's effect finds nothing left to undo
        loop.governance.rollback(proposal.patch_hash)
    except OuroError as e:
        loop.store.save(failed.logged(loop.clock(), f"kernel rollback refused: {e.message}; "
                                      f"run `ouro rollback --patch {proposal.patch_hash}`"),
                        f"proposal {proposal.id}: kernel rollback refused")
        loop.notifications.alert(Message(f"Proposal {proposal.id}: kernel still says applied",
                                         e.message, "critical"), loop.clock())


def revert(loop: ImproveLoop, proposal: Proposal, check: Check | None, why: str = "") -> None:
    """Undo a landed proposal (a pushed revert commit, or the state patch rolled back), roll
    its patch back in the kernel, halt the loop and alert."""
    now = loop.clock()
    reason = why or f"error rate spike after merge: {check.describe() if check else '?'}"
    message = f"Revert proposal {proposal.id}: {reason}"
    try:
        if proposal.branch == NO_BRANCH:
            loop.state_flow.revert(proposal, reason)
            return
        loop.repo.revert(proposal.merge_commit, message)
        commit, unpushed = loop.publisher.push_revert(proposal.merge_commit, message)
        line = f"auto-reverted as {commit}: {reason}"
        if unpushed:
            line += f"; REVERT NOT PUSHED ({unpushed}): push {loop.repo.main} by hand"
    except GitError as e:
        _revert_failed(loop, proposal, reason, e)
        return
    reverted = proposal.transition("reverted").logged(now, line)
    loop._save(reverted, proposal.status, line)
    try:  # after the status change, so the rollback's effect finds nothing left to do
        loop.governance.rollback(proposal.patch_hash)
    except OuroError as e:
        line += f"; kernel rollback refused: {e.message}"
        loop.store.save(reverted.logged(now, f"kernel rollback refused: {e.message}"),
                        f"proposal {proposal.id}: kernel rollback refused")
    loop.breakers.halt(f"proposal {proposal.id} auto-reverted ({reason})")
    loop.notifications.alert(Message(f"Proposal {proposal.id} auto-reverted", line, "critical"),
                             now)


def _revert_failed(loop: ImproveLoop, proposal: Proposal, reason: str, e: GitError) -> None:
    """The revert's git step failed (nothing of it is left on main): the change is still
    merged, so the proposal is ``revert_failed`` (never ``reverted``), its kernel patch stays
    applied, the loop halts and a human is alerted."""
    now = loop.clock()
    line = (f"AUTO-REVERT FAILED ({e.reason[:300]}) after: {reason}; the change is still on "
            f"{loop.repo.main}: revert {proposal.merge_commit} by hand, then `ouro rollback "
            f"--patch {proposal.patch_hash}`")
    loop._save(proposal.transition("revert_failed").logged(now, line), proposal.status, line)
    loop.breakers.halt(f"proposal {proposal.id}: automatic revert failed ({reason})")
    loop.notifications.alert(Message(f"Proposal {proposal.id}: automatic revert FAILED", line,
                                     "critical"), now)
