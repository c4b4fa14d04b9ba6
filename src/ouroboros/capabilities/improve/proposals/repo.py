"""The target git repository: branches from a pinned base, patches, merges and reverts.

Patches are applied with plumbing into a private index (``GIT_INDEX_FILE``) and the
branch ref is created only once the commit exists, so a diff that does not apply
leaves nothing behind: no branch, no commit, no touched working tree. ``main`` is
moved only by :meth:`TargetRepo.merge` and :meth:`TargetRepo.revert`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ouroboros.storage.files import flocked

MAIN = "main"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ouroboros",
    "GIT_AUTHOR_EMAIL": "ouroboros@localhost",
    "GIT_COMMITTER_NAME": "Ouroboros",
    "GIT_COMMITTER_EMAIL": "ouroboros@localhost",
}


class GitError(Exception):
    """A git command failed; ``reason`` is git's own message, trimmed."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action}: {reason}")
        self.action = action
        self.reason = reason


@dataclass(frozen=True)
class RawChange:
    """One entry of ``git diff --raw``: status letter, modes and the real path(s)."""

    status: str  # A, C, D, M, R, T (U, X: never from a two-tree diff)
    old_mode: str
    new_mode: str
    paths: tuple[str, ...]  # (path,) or (source, destination) for a rename or copy


def parse_raw_z(out: str) -> list[RawChange]:
    """``git diff --raw -z`` output: NUL-separated, paths never quoted."""
    fields = out.split("\0")
    changes, i = [], 0
    while i < len(fields) and fields[i].startswith(":"):
        meta = fields[i][1:].split()
        status = meta[4][:1]
        count = 2 if status in ("R", "C") else 1
        changes.append(RawChange(status, meta[0], meta[1], tuple(fields[i + 1:i + 1 + count])))
        i += 1 + count
    return changes


@dataclass(frozen=True)
class BranchCommit:
    branch: str
    commit: str
    base: str


def proposal_branch(proposal_id: str) -> str:
    return f"ouro/proposal-{proposal_id}"


def example_deployment() -> Path:
    """The example deployment shipped as package data (it seeds the default target repo
    and ``ouro improve init-example``)."""
    return Path(__file__).resolve().parents[1] / "example" / "agent-deployment"


@contextmanager
def exclusive(lock: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold ``lock`` (a file, flock'd) exclusively: one process, or thread, at a time;
    another process holding it past ``OURO_LOCK_TIMEOUT`` (or ``timeout``) is a
    `LockTimeout`."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with flocked(lock, mode=0o644, timeout=timeout):
        yield


class TargetRepo:
    """One git repository whose ``main`` is the deployed configuration."""

    def __init__(self, path: Path, main: str = MAIN, remote: str | None = None) -> None:
        self.path = Path(path)
        self.main = main
        self.remote = remote  # the remote to push to and fetch from, when there is one

    # -- plumbing ---------------------------------------------------------------------
    def git(
        self,
        *args: str,
        action: str = "git",
        env: dict[str, str] | None = None,
        input: bytes | None = None,
    ) -> str:
        full_env = {**os.environ, **_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            env=full_env,
            input=input,
            check=False,
        )
        if proc.returncode != 0:
            reason = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
            raise GitError(action, reason or f"git {args[0]} exited {proc.returncode}")
        # surrogateescape: a path that is not UTF-8 round-trips back into git unchanged
        return proc.stdout.decode("utf-8", "surrogateescape")

    @classmethod
    def init(cls, path: Path, source: Path | None = None, main: str = MAIN) -> TargetRepo:
        """Create a repository at ``path`` whose first commit on main is ``source``'s files."""
        path = Path(path)
        if (path / ".git").exists():
            repo = cls(path, main)
            if not repo.branch_exists(main):
                raise GitError("init", f"{path} has no `{main}` branch; the loop merges into {main}")
            return repo
        src = source or example_deployment()
        path.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, path, dirs_exist_ok=True)
        repo = cls(path, main)
        repo.git("init", "-q", "-b", main, action="init")
        repo.git("config", "user.name", "Ouroboros")
        repo.git("config", "user.email", "ouroboros@localhost")
        repo.git("add", "-A", action="init")
        repo.git("commit", "-q", "-m", "Initial deployment", action="init")
        return repo

    def rev(self, ref: str) -> str:
        suffix = "" if ref.endswith("}") else "^{commit}"
        return self.git("rev-parse", "--verify", f"{ref}{suffix}", action="rev-parse").strip()

    def head(self) -> str:
        return self.rev(self.main)

    def branch_exists(self, branch: str) -> bool:
        try:
            self.git("show-ref", "--verify", "--quiet", f"refs/heads/{branch}")
        except GitError:
            return False
        return True

    def branches(self) -> list[str]:
        out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return [line for line in out.splitlines() if line]

    def read(self, ref: str, path: str) -> str | None:
        """A file's text at ``ref``, or None when it does not exist there."""
        try:
            return self.git("show", f"{ref}:{path}", action="show")
        except GitError:
            return None

    def changed_files(self, base: str, ref: str) -> list[str]:
        """Real paths (``-z``: git quotes nothing), so non-ASCII names are validated too."""
        out = self.git("diff", "--name-only", "-z", "--no-renames", base, ref, action="diff")
        return [name for name in out.split("\0") if name]

    def raw_changes(self, base: str, ref: str) -> list[RawChange]:
        """Every path ``ref`` changes from ``base``, as git sees it: renames and copies
        with both paths (copies found from unmodified files too), mode and type changes,
        binary files, deletions."""
        out = self.git("diff", "--raw", "-z", "-M", "-C", "--find-copies-harder",
                       "--no-abbrev", base, ref, action="diff")
        return parse_raw_z(out)

    def diff(self, base: str, ref: str) -> str:
        return self.git("diff", "--no-renames", base, ref, action="diff")

    # -- proposal branches ------------------------------------------------------------
    def check_patch(self, base: str, patch: str) -> None:
        """``git apply --check`` of ``patch`` against ``base``; raises with git's reason."""
        with self._index_at(base) as env:
            self._apply(patch, env, check=True)

    def apply_to_branch(self, branch: str, base: str, patch: str, message: str) -> BranchCommit:
        """Commit ``patch`` on a new ``branch`` from ``base``, all or nothing.

        Raises:
            GitError: the branch exists, or the diff does not apply (git's reason).
        """
        if self.branch_exists(branch):
            raise GitError("branch", f"branch {branch} already exists")
        base = self.rev(base)
        with self._index_at(base) as env:
            self._apply(patch, env, check=True)
            self._apply(patch, env, check=False)
            tree = self.git("write-tree", action="write-tree", env=env).strip()
        commit = self.git("commit-tree", tree, "-p", base, "-m", message, action="commit").strip()
        # The zero old-value makes the ref update fail if someone created it meanwhile.
        self.git("update-ref", f"refs/heads/{branch}", commit, "0" * 40, action="update-ref")
        return BranchCommit(branch=branch, commit=commit, base=base)

    def tree_of_patch(self, base: str, patch: str) -> str:
        """The tree ``patch`` produces on ``base`` (raises with git's reason)."""
        with self._index_at(self.rev(base)) as env:
            self._apply(patch, env, check=False)
            return self.git("write-tree", action="write-tree", env=env).strip()

    def branch_matches(self, branch: str, base: str, patch: str) -> str | None:
        """Why ``branch`` is not exactly one commit of ``patch`` on ``base``, or None."""
        parents = self.git("rev-list", "--parents", "-n1", branch).split()[1:]
        if parents != [self.rev(base)]:
            return f"{branch} is not one commit on the pinned base {base[:12]}"
        if self.rev(f"{branch}^{{tree}}") != self.tree_of_patch(base, patch):
            return f"{branch} does not hold exactly the proposal's diff"
        return None

    def merge_conflicts(self, branch: str) -> str | None:
        """Why ``branch`` would not merge cleanly into main now, or None (nothing is written
        to any ref or working tree)."""
        try:
            self.git("merge-tree", "--write-tree", "--name-only", "--no-messages", self.main,
                     branch, action="merge-tree")
        except GitError as e:
            files = [line for line in e.reason.splitlines()[1:] if line.strip()]
            return f"{branch} conflicts with {self.main} in {', '.join(files) or e.reason}"
        return None

    def delete_branch(self, branch: str) -> None:
        if self.branch_exists(branch):
            self.git("branch", "-D", branch, action="delete-branch")

    @contextmanager
    def checkout_tree(self, ref: str) -> Iterator[Path]:
        """A throwaway directory holding ``ref``'s files, for linters that need files.

        The blobs are written exactly as committed (``git cat-file``): ``git archive``
        applied the tree's own ``.gitattributes`` (``export-ignore`` left a file out of
        validation, ``export-subst`` validated other text than main would get). Links
        and submodules are never materialised (the policy gate rejects them).
        """
        listing = self.git("ls-tree", "-r", "-z", "--full-tree", ref, action="ls-tree")
        files: list[tuple[str, str]] = []
        for entry in listing.split("\0"):
            meta, _, name = entry.partition("\t")
            fields = meta.split()
            if len(fields) == 3 and fields[1] == "blob" and fields[0] in ("100644", "100755"):
                if any(part in ("", ".", "..") for part in name.split("/")):
                    raise GitError("ls-tree", f"{ref} holds an unsafe path {name!r}")
                files.append((name, fields[2]))
        data = subprocess.run(
            ["git", "-C", str(self.path), "cat-file", "--batch"],
            input="".join(f"{sha}\n" for _, sha in files).encode("ascii"),
            capture_output=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
            check=False,
        )
        if data.returncode != 0:
            raise GitError("cat-file", data.stderr.decode("utf-8", "replace").strip())
        with tempfile.TemporaryDirectory(prefix="ouro-validate-") as tmp:
            out, at = data.stdout, 0
            for name, _ in files:
                header_end = out.index(b"\n", at)
                size = int(out[at:header_end].split()[2])
                body = out[header_end + 1:header_end + 1 + size]
                at = header_end + 1 + size + 1  # the blob, then git's newline
                dest = Path(tmp, *name.split("/"))
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(body)
            yield Path(tmp)

    # -- main -------------------------------------------------------------------------
    def merge(self, branch: str, message: str) -> str:
        """Merge ``branch`` into main (no fast-forward); aborted cleanly on conflict."""
        self._require_main_checked_out()
        try:
            self.git("merge", "--no-ff", "-m", message, branch, action="merge")
        except GitError:
            self._abort("merge")
            raise
        return self.head()

    def revert(self, merge_commit: str, message: str) -> str:
        """Revert a merge commit on main with a new commit; aborted cleanly on conflict."""
        self._require_main_checked_out()
        args: Sequence[str] = ("revert", "--no-edit")
        if len(self.git("rev-list", "--parents", "-n1", merge_commit).split()) > 2:
            args = (*args, "-m", "1")
        try:
            self.git(*args, "--no-commit", merge_commit, action="revert")
            self.git("commit", "-q", "-m", message, action="revert")
        except GitError:
            self._abort("revert")
            raise
        return self.head()

    # -- internals --------------------------------------------------------------------
    @contextmanager
    def _index_at(self, base: str) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="ouro-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", base, action="read-tree", env=env)
            yield env

    def _apply(self, patch: str, env: dict[str, str], *, check: bool) -> None:
        args = ["apply", "--cached", "--whitespace=nowarn"]
        if check:
            args.append("--check")
        action = "git apply --check" if check else "git apply"
        if not patch.strip():
            raise GitError(action, "empty diff")
        self.git(*args, "-", action=action, env=env, input=patch.encode("utf-8"))

    def _require_main_checked_out(self) -> None:
        try:
            current = self.git("symbolic-ref", "--short", "HEAD").strip()
        except GitError:  # not a symbolic ref
            current = "a detached HEAD"
        if current != self.main:
            raise GitError("checkout",
                           f"{self.main} must be checked out in {self.path}, not {current}")
        status = self.git("status", "--porcelain", "--untracked-files=no").strip()
        if status:
            raise GitError("checkout", f"uncommitted changes in {self.path}; commit or stash them")

    def _abort(self, what: str) -> None:
        try:
            self.git(what, "--abort")
        except GitError:
            self.git("reset", "--hard", "-q", "HEAD")
