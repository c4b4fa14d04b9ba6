"""The gates of a proposal on the target repository: its branch, validated (test) and its
real diff against the pinned base, policy-tested (audit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ouroboros.capabilities.improve.proposals.diffs import DiffError, declared_paths, parse_diff
from ouroboros.capabilities.improve.proposals.policy import check_policy, forbidden_path_reasons
from ouroboros.capabilities.improve.proposals.preflight import path_reasons
from ouroboros.capabilities.improve.proposals.repo import GitError
from ouroboros.capabilities.improve.proposals.validation import validate_tree

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop


def test_gate(loop: ImproveLoop, value: Mapping[str, Any]) -> tuple[bool, str]:
    """Test gate: the diff applies to a branch from the pinned base and validates.

    At submission the branch is created; at approval (the kernel runs the gates
    again) it must still hold exactly the diff and merge cleanly into main. A change
    to kernel state must still be made against the target's current value.
    """
    branch, base = str(value["branch"]), str(value["base"])
    diff = loop.governance.diff_of(value)
    try:
        if loop.repo.branch_exists(branch):
            problem = loop.repo.branch_matches(branch, base, diff)
            if problem:
                return False, problem
            commit = loop.repo.rev(branch)
        else:
            commit = loop.repo.apply_to_branch(
                branch, base, diff, f"chore(ouro): proposal {value['proposal']}").commit
        conflict = loop.repo.merge_conflicts(branch)
        if conflict:
            return False, conflict
    except GitError as e:
        return False, f"{e.action} failed: {e.reason}"
    with loop.repo.checkout_tree(commit) as tree:
        report = validate_tree(tree, loop.repo.changed_files(base, commit),
                               loop.target_config(base).schemas)
    if not report.ok:
        return False, f"validation failed: {report.reason()}"
    return True, "; ".join(str(c) for c in report.checks) or "no files to validate"

def audit_gate(loop: ImproveLoop, value: Mapping[str, Any]) -> list[str]:
    """Audit gate: the policy tests on the branch's real diff against its base."""
    branch, base = str(value["branch"]), str(value["base"])
    if not loop.repo.branch_exists(branch):
        return [f"branch {branch} missing: the test gate did not create it"]
    try:
        changes = parse_diff(loop.repo.diff(base, branch))
        raw = loop.repo.raw_changes(base, branch)
    except (DiffError, GitError) as e:
        return [f"cannot read the branch diff: {e}"]
    # Paths from git's own view of the branch and from the submitted diff's headers
    # (a copy's or rename's source is named there even when git sees only an add).
    real = [p for c in raw for p in c.paths]
    extra = real + sorted(declared_paths(loop.governance.diff_of(value)))
    modes = {c.paths[-1]: c.new_mode for c in raw}
    config = loop.target_config(base)
    return [*forbidden_path_reasons(changes, config.policy, extra, modes),
            *path_reasons([*(p for c in changes for p in c.paths), *real], config),
            *check_policy(changes, lambda p: loop.repo.read(base, p),
                          lambda p: loop.repo.read(branch, p), config.policy,
                          paths_checked=True)]
