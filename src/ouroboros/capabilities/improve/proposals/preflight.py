"""The gates, run on a candidate diff before it becomes a proposal.

A writer (the LLM's repair loop) needs to know *why* a diff would be refused, without
creating a branch: the same forbidden-path checks, ``git apply --check``, validation and
policy tests the kernel's gates run later, on the tree the diff produces at the base. The
gates still run at submission; this only lets a writer fix its answer first.
"""

from __future__ import annotations

import posixpath
import unicodedata

from ouroboros.capabilities.improve.proposals.diffs import DiffError, declared_paths, parse_diff
from ouroboros.capabilities.improve.proposals.policy import (
    check_policy,
    forbidden_path_reasons,
    matches_any,
)
from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo
from ouroboros.capabilities.improve.proposals.target_config import TargetConfig
from ouroboros.capabilities.improve.proposals.validation import validate_tree


def plain_path(path: str) -> bool:
    """Written in the one form the allow-list matches: NFC, no ``.``/``..``/``//``
    segments, no leading slash, printable."""
    nfc = unicodedata.normalize("NFC", path)
    return (path == nfc and posixpath.normpath(path) == path and not path.startswith("/")
            and all(ch.isprintable() for ch in path))


def path_reasons(paths: list[str], config: TargetConfig) -> list[str]:
    """Paths outside the allow-list, or not written plainly (forbidden paths are the
    policy's, checked separately)."""
    reasons = []
    for path in dict.fromkeys(paths):
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if not plain_path(path):
            reasons.append(f"path not in plain form: {shown!r}")
        elif config.allowed_paths and not matches_any(path, config.allowed_paths):
            reasons.append(f"path outside the allowed paths ({', '.join(config.allowed_paths)}):"
                           f" {shown}")
    return reasons


def preflight(repo: TargetRepo, base: str, diff: str, config: TargetConfig,
              max_bytes: int) -> list[str]:
    """Every reason the gates would refuse ``diff`` on ``base``; empty: it would pass."""
    if not diff.strip():
        return ["the diff is empty"]
    if len(diff.encode("utf-8", "surrogateescape")) > max_bytes:
        return [f"the diff is larger than {max_bytes} bytes"]
    try:
        changes = parse_diff(diff)
    except DiffError as e:
        return [f"not a unified diff: {e}"]
    declared = sorted(declared_paths(diff))
    # Forbidden paths: every name the headers declare too (as written and stripped); the
    # allow-list: the real paths (the diff's, then git's own view of the result below).
    reasons = [*forbidden_path_reasons(changes, config.policy, declared),
               *path_reasons([p for c in changes for p in c.paths], config)]
    if reasons:
        return reasons
    try:
        repo.check_patch(base, diff)
        tree = repo.tree_of_patch(base, diff)
        raw = repo.raw_changes(base, tree)
    except GitError as e:
        return [f"{e.action} failed: {e.reason}"]
    raw_paths = [p for c in raw for p in c.paths]
    modes = {c.paths[-1]: c.new_mode for c in raw}
    reasons = [*forbidden_path_reasons(changes, config.policy, raw_paths, modes),
               *path_reasons(raw_paths, config)]
    if reasons:
        return reasons
    with repo.checkout_tree(tree) as root:
        report = validate_tree(root, repo.changed_files(base, tree), config.schemas)
    if not report.ok:
        return [f"validation failed: {report.reason()}"]
    return check_policy(changes, lambda p: repo.read(base, p), lambda p: repo.read(tree, p),
                        config.policy, paths_checked=True)
