"""The target's remote: cloning the user's repository, pushing proposal branches, merges
and reverts, and checking what a forge says against what the remote really holds.

The loop works in its own clone (``<home>/improve/target``), never in the user's working
copy; the user's repository (a path on disk or a git URL) is the clone's remote. A forge
is an untrusted witness: a merge it reports counts only once ``git fetch`` shows the
remote branch really contains the proposal's change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo


def is_remote_url(source: str) -> bool:
    """A git URL (``scheme://`` or scp-like ``user@host:path``) rather than a local path."""
    if "://" in source:
        return True
    head = source.split("/", 1)[0]
    return ":" in head and "@" in head


def clone(source: str, path: Path, branch: str, remote: str = "origin") -> TargetRepo:
    """Clone ``source`` into ``path`` (nothing is left behind when cloning fails).

    Raises:
        GitError: git cannot clone it, or it has no ``branch``.
    """
    path = Path(path).absolute()  # git runs in its parent: a relative path would nest
    if path.exists() and any(path.iterdir()):
        raise GitError("clone", f"{path} is not empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    here = TargetRepo(path.parent)
    url = source if is_remote_url(source) else str(Path(source).expanduser().resolve())
    try:
        here.git("clone", "-q", "--origin", remote, "--branch", branch, "--", url, str(path),
                 action="clone")
    except GitError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    repo = TargetRepo(path, branch, remote)
    repo.git("config", "user.name", "Ouroboros")
    repo.git("config", "user.email", "ouroboros@localhost")
    return repo


def checked_out_branch(source: str) -> str | None:
    """The branch checked out in a local non-bare repository (git refuses pushes to it)."""
    if is_remote_url(source) or not Path(source).is_dir():
        return None
    repo = TargetRepo(Path(source))
    try:
        if repo.git("rev-parse", "--is-bare-repository").strip() == "true":
            return None
        return repo.git("symbolic-ref", "--short", "-q", "HEAD").strip() or None
    except GitError:
        return None


def remote_url(repo: TargetRepo) -> str | None:
    if not repo.remote:
        return None
    try:
        return repo.git("remote", "get-url", repo.remote, action="remote").strip()
    except GitError:
        return None


def fetch(repo: TargetRepo) -> None:
    assert repo.remote
    repo.git("fetch", "-q", "--prune", repo.remote, action="git fetch")


def remote_main(repo: TargetRepo) -> str:
    """The remote's main branch head after a fetch."""
    fetch(repo)
    return repo.rev(f"refs/remotes/{repo.remote}/{repo.main}")


def push(repo: TargetRepo, ref: str, *, delete: bool = False) -> None:
    """Push ``ref`` (a branch) to the remote; no force, so a moved remote is never
    overwritten. Raises GitError with the remote's reason when it refuses."""
    assert repo.remote
    spec = f":refs/heads/{ref}" if delete else f"refs/heads/{ref}:refs/heads/{ref}"
    repo.git("push", "-q", "--porcelain", repo.remote, spec, action="git push")


def is_ancestor(repo: TargetRepo, commit: str, of: str) -> bool:
    try:
        repo.git("merge-base", "--is-ancestor", commit, of, action="merge-base")
    except GitError:
        return False
    return True


def patch_id(repo: TargetRepo, old: str, new: str) -> str | None:
    """git's stable patch id of the change ``old..new`` (whitespace- and line-number-
    insensitive), so a squash or rebase merge of a proposal is recognised."""
    diff = repo.git("diff", "--no-renames", "--full-index", old, new, action="diff")
    if not diff.strip():
        return None
    out = repo.git("patch-id", "--stable", action="patch-id", input=diff.encode("utf-8",
                                                                             "surrogateescape"))
    return out.split()[0] if out.strip() else None


def contains_change(repo: TargetRepo, branch_commit: str, base: str, merge_commit: str,
                    remote_head: str) -> str | None:
    """Why ``merge_commit`` on the remote is *not* the proposal's change, or None.

    Accepted: a merge or fast-forward containing the branch commit, or a squash/rebase
    commit whose patch id equals the proposal's; in every case the commit must be on
    the remote's main.
    """
    try:
        repo.rev(merge_commit)
    except GitError:
        return f"the forge names merge commit {merge_commit[:12]}, which the remote does not have"
    if not is_ancestor(repo, merge_commit, remote_head):
        return f"{merge_commit[:12]} is not on the remote's {repo.main}"
    if is_ancestor(repo, branch_commit, merge_commit):
        return None
    parents = repo.git("rev-list", "--parents", "-n1", merge_commit).split()[1:]
    if parents and patch_id(repo, parents[0], merge_commit) == patch_id(repo, base, branch_commit):
        return None
    return f"{merge_commit[:12]} does not hold the proposal's change"


def sync_main(repo: TargetRepo) -> str:
    """Fast-forward the local main to the remote's (the human merged there)."""
    head = remote_main(repo)
    repo.git("merge", "-q", "--ff-only", head, action="git merge --ff-only")
    return repo.head()


def reset_main(repo: TargetRepo, commit: str) -> None:
    """Move the local main back to ``commit`` (undo a merge the remote refused)."""
    repo.git("reset", "-q", "--hard", commit, action="reset")
