"""Publishing proposals: branches pushed to the target's remote, pull requests on a forge,
merges and reverts pushed, merges done by a human noticed, and the deploy command.

State that outlives a process (which pull request belongs to which proposal, and which
forge claims were already found false) lives in ``<home>/improve/pulls.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from ouroboros.capabilities.improve.proposals import remote
from ouroboros.capabilities.improve.proposals.forge import Forge, ForgeError, PullRequest
from ouroboros.capabilities.improve.proposals.proposal import Proposal, read_state_or
from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo
from ouroboros.kernel.settings import DeploySettings
from ouroboros.storage.files import replace_file


@dataclass(frozen=True)
class Pull:
    number: int
    url: str
    disputed: str = ""  # why the forge's last merge claim did not hold, if it did not


@dataclass(frozen=True)
class Noticed:
    """What the remote or forge says happened to a pending proposal."""

    proposal_id: str
    verdict: str  # merged | closed | disputed
    detail: str
    merge_commit: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    detail: str


class Publisher:
    def __init__(self, repo: TargetRepo, path: Path, forge: Forge | None, push: bool) -> None:
        self.repo = repo
        self.path = path
        self.forge = forge
        self.enabled = push and bool(repo.remote) and remote.remote_url(repo) is not None
        self.pulls: dict[str, Pull] = read_state_or(
            path, lambda data: {k: Pull(**v) for k, v in data.items()}, dict)

    def _save(self) -> None:
        replace_file(self.path, json.dumps({k: asdict(v) for k, v in self.pulls.items()},
                                           indent=1))

    # -- proposing --------------------------------------------------------------------
    def publish(self, p: Proposal, body: str) -> list[str]:
        """Push the proposal's branch and open its pull request; log lines (each failure
        is a line too: the proposal stays pending and can be approved here)."""
        if not self.enabled:
            return []
        try:
            remote.push(self.repo, p.branch)
        except GitError as e:
            return [f"push of {p.branch} refused by the remote: {e.reason[:300]}"]
        lines = [f"branch {p.branch} pushed to {self.repo.remote}"]
        if self.forge is None:
            return lines
        try:
            pull = self.forge.open_pull(p.branch, self.repo.main, f"[ouro] {p.title}", body)
        except ForgeError as e:
            return [*lines, f"pull request not opened: {str(e)[:300]}"]
        self.pulls[p.id] = Pull(pull.number, pull.url)
        self._save()
        return [*lines, f"pull request #{pull.number} opened: {pull.url}"]

    def pull_of(self, proposal_id: str) -> PullRequest | None:
        pull = self.pulls.get(proposal_id)
        return PullRequest(pull.number, pull.url) if pull else None

    def withdraw(self, p: Proposal, why: str) -> None:
        """A rejected proposal: delete its remote branch, say why on its pull request."""
        if not self.enabled:
            return
        pull = self.pulls.get(p.id)
        if pull and self.forge:
            with contextlib.suppress(ForgeError):  # the rejection stands; a comment is courtesy
                self.forge.comment(pull.number, f"Rejected: {why}")
        with contextlib.suppress(GitError):  # already gone, or never pushed
            remote.push(self.repo, p.branch, delete=True)

    # -- noticing a human's merge -----------------------------------------------------
    def notice(self, pending: list[Proposal]) -> list[Noticed]:
        """Pending proposals merged (or closed) outside the loop, checked against the remote."""
        if not self.enabled or not pending:
            return []
        try:
            head = remote.remote_main(self.repo)
        except GitError:
            return []
        found = []
        for p in pending:
            seen = self._notice_one(p, head)
            if seen is not None:
                found.append(seen)
        return found

    def _notice_one(self, p: Proposal, head: str) -> Noticed | None:
        try:
            commit = self.repo.rev(p.branch)
        except GitError:
            return None
        pull = self.pulls.get(p.id)
        if pull is None or self.forge is None:
            if remote.is_ancestor(self.repo, commit, head):
                return Noticed(p.id, "merged", f"{p.branch} is on {self.repo.remote}/"
                               f"{self.repo.main}", head)
            return None
        try:
            state = self.forge.pull_state(pull.number)
        except ForgeError:
            return None  # the forge is down: ask again at the next tick
        if state.state == "closed":
            return Noticed(p.id, "closed", f"pull request #{pull.number} closed without merging")
        if state.state != "merged":
            return None
        problem = remote.contains_change(self.repo, commit, p.base_commit,
                                         state.merge_commit or "", head) \
            if state.merge_commit else "the forge names no merge commit"
        if problem:
            if pull.disputed == problem:
                return None  # reported once already
            self.pulls[p.id] = Pull(pull.number, pull.url, problem)
            self._save()
            return Noticed(p.id, "disputed", f"pull request #{pull.number} reported merged, "
                           f"but {problem}")
        return Noticed(p.id, "merged", f"pull request #{pull.number} merged on the forge",
                       state.merge_commit, state.merged_by)

    # -- main -------------------------------------------------------------------------
    def push_main(self, before: str) -> str | None:
        """Push main after a merge; on refusal, undo the local merge and say why."""
        if not self.enabled:
            return None
        try:
            remote.push(self.repo, self.repo.main)
        except GitError as e:
            remote.reset_main(self.repo, before)
            return f"the remote refused the merge: {e.reason[:300]}"
        return None

    def push_revert(self, merge_commit: str, message: str) -> tuple[str, str | None]:
        """Push a revert; if the remote moved on, revert again on top of it once.
        Returns (revert commit, why it could not be pushed or None)."""
        commit = self.repo.head()
        if not self.enabled:
            return commit, None
        try:
            remote.push(self.repo, self.repo.main)
            return commit, None
        except GitError as first:
            try:
                head = remote.remote_main(self.repo)
                remote.reset_main(self.repo, head)
                commit = self.repo.revert(merge_commit, message)
                remote.push(self.repo, self.repo.main)
                return commit, None
            except GitError as e:
                return commit, f"{first.reason[:200]}; retry: {e.reason[:200]}"


def run_deploy(settings: DeploySettings, cwd: Path, proposal_id: str, commit: str) -> DeployResult:
    """The configured deploy command in the target checkout (argv, no shell), bounded by
    its timeout; ``OURO_PROPOSAL`` and ``OURO_COMMIT`` tell it what is deployed."""
    if not settings.command:
        return DeployResult(True, "no deploy command configured")
    env = {**os.environ, "OURO_PROPOSAL": proposal_id, "OURO_COMMIT": commit}
    try:
        proc = subprocess.run(list(settings.command), cwd=cwd, env=env, capture_output=True,
                              timeout=settings.timeout_s, check=False)
    except FileNotFoundError:
        return DeployResult(False, f"deploy command not found: {settings.command[0]}")
    except subprocess.TimeoutExpired:
        return DeployResult(False, f"deploy command timed out after {settings.timeout_s:g} s")
    tail = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()[-3:]
    detail = " | ".join(tail)[:300]
    if proc.returncode != 0:
        return DeployResult(False, f"deploy exited {proc.returncode}: {detail}")
    return DeployResult(True, f"deployed ({detail})" if detail else "deployed")
