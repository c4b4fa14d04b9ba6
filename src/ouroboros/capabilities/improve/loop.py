"""The self-improvement loop: drafts -> gated proposals -> approval -> merge -> monitor.

:class:`ImproveLoop` is the imperative shell around the pure parts (planner, policy,
validation, monitor verdicts). It owns the workspace layout under ``<home>/improve``:

- ``target/``     the target git repository (default: the shipped example deployment)
- ``proposals/``  the proposals git repository (markdown, templates, ``index.md``)
- ``breakers.json``, ``monitor.json``, ``notifications.json``: persisted state
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding, error_rate
from ouroboros.capabilities.improve.breakers import Breakers
from ouroboros.capabilities.improve.diffs import DiffError, parse_diff
from ouroboros.capabilities.improve.governance import GateResult, Governance
from ouroboros.capabilities.improve.monitor import DEFAULT_WINDOW, Check, Monitor
from ouroboros.capabilities.improve.notify import (
    Message,
    NotificationBatcher,
    Notifier,
    StdoutNotifier,
)
from ouroboros.capabilities.improve.planner import Draft, plan
from ouroboros.capabilities.improve.policy import PolicyConfig, check_policy
from ouroboros.capabilities.improve.proposals import OPEN_STATUSES, Proposal, ProposalError, Review
from ouroboros.capabilities.improve.repo import GitError, TargetRepo, proposal_branch
from ouroboros.capabilities.improve.store import ProposalStore
from ouroboros.capabilities.improve.validation import validate_tree

Clock = Callable[[], datetime]
EventSource = Callable[[], Iterable[Mapping[str, Any]]]


class Paused(ProposalError):
    """A circuit breaker forbids this now."""


class NotApproved(ProposalError):
    """The proposal is waiting for a human's approval."""


@dataclass(frozen=True)
class Outcome:
    proposal: Proposal
    message: str
    gate: GateResult | None = None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ImproveLoop:
    def __init__(
        self,
        home: Path,
        governance: Governance,
        *,
        events: EventSource = lambda: (),
        notifier: Notifier | None = None,
        clock: Clock = utcnow,
        window: timedelta = DEFAULT_WINDOW,
        policy: PolicyConfig | None = None,
        target: Path | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:8],
    ) -> None:
        self.root = Path(home) / "improve"
        self.repo = TargetRepo.init(target or self.root / "target")
        self.store = ProposalStore.init(self.root / "proposals")
        self.breakers = Breakers(self.root / "breakers.json")
        self.notifications = NotificationBatcher(self.root / "notifications.json",
                                                 notifier or StdoutNotifier())
        self.monitor = Monitor(self.root / "monitor.json", self._rate, window)
        self.governance = governance
        self.events = events
        self.clock = clock
        self.policy = policy or PolicyConfig()
        self.new_id = new_id
        governance.bind(self)

    # -- reading ----------------------------------------------------------------------
    def proposals(self, status: str | None = None) -> list[Proposal]:
        return [p for p in self.store.all() if status is None or p.status == status]

    def get(self, ref: str) -> Proposal:
        return self.store.get(ref)

    # -- gates (called by the kernel through governance) -------------------------------
    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]:
        """Test gate: the diff applies to a fresh branch from the base and validates."""
        branch = str(value["branch"])
        try:
            made = self.repo.apply_to_branch(branch, str(value["base"]), str(value["diff"]),
                                             f"chore(ouro): proposal {value['proposal']}")
        except GitError as e:
            return False, f"{e.action} failed: {e.reason}"
        paths = self.repo.changed_files(made.base, made.commit)
        with self.repo.checkout_tree(made.commit) as tree:
            report = validate_tree(tree, paths)
        if not report.ok:
            self.repo.delete_branch(branch)
            return False, f"validation failed: {report.reason()}"
        return True, "; ".join(str(c) for c in report.checks) or "no files to validate"

    def audit(self, value: Mapping[str, Any]) -> list[str]:
        """Audit gate: the policy tests on the branch's real diff against its base."""
        branch, base = str(value["branch"]), str(value["base"])
        if not self.repo.branch_exists(branch):
            return [f"branch {branch} missing: the test gate did not create it"]
        try:
            changes = parse_diff(self.repo.diff(base, branch))
        except DiffError as e:
            return [f"cannot read the branch diff: {e}"]
        return check_policy(changes, lambda p: self.repo.read(base, p),
                            lambda p: self.repo.read(branch, p), self.policy)

    def effect(self, value: Mapping[str, Any]) -> None:
        """Apply: merge the approved proposal's branch into main and start monitoring."""
        self._merge(self.get(str(value["proposal"])))

    # -- proposing --------------------------------------------------------------------
    def propose_from_findings(self, findings: Iterable[Finding]) -> list[Outcome]:
        """Plan drafts for ``findings`` at main's head and submit each one."""
        now = self.clock()
        blocked = self.breakers.analysis_blocked(now)
        if blocked:
            raise Paused(blocked)
        head = self.repo.head()
        drafts = plan(findings, lambda path: self.repo.read(head, path))
        return [o for o in (self.propose(d) for d in drafts) if o is not None]

    def propose(self, draft: Draft, base: str | None = None) -> Outcome | None:
        """Submit one draft through the gates; None when an open proposal already has its key."""
        now = self.clock()
        blocked = self.breakers.category_blocked(draft.category, now)
        if blocked:
            raise Paused(blocked)
        if any(p.key == draft.key and p.status in OPEN_STATUSES for p in self.store.all()):
            return None
        pid = self.new_id()
        proposal = Proposal(
            id=pid, title=draft.title, created=now, category=draft.category,  # type: ignore[arg-type]
            severity=draft.severity, problem=draft.problem,  # type: ignore[arg-type]
            evidence=draft.evidence, root_cause=draft.root_cause, solution=draft.solution,
            diff=draft.diff, affected_files=draft.affected_files, risk=draft.risk,
            base_commit=self.repo.rev(base or "main"), key=draft.key,
            branch=proposal_branch(pid),
        )
        value = {
            "proposal": pid, "repository": str(self.repo.path), "base": proposal.base_commit,
            "branch": proposal.branch, "diff": proposal.diff,
            "files": list(draft.affected_files) or ["-"], "category": draft.category,
        }
        result = self.governance.submit(value, f"{draft.title}: {draft.root_cause}")
        proposal = replace(proposal, patch_hash=result.patch_hash or "-")
        if result.status == "rejected":
            self.repo.delete_branch(proposal.branch)  # nothing of a blocked proposal remains
            proposal = replace(proposal.transition("blocked"), review=Review(
                f"gate:{result.stage}", now, "blocked", result.reason))
            self._save(proposal, None, f"blocked at the {result.stage} gate: {result.reason}")
            self.breakers.record_rejection(now)
            return Outcome(proposal, f"blocked at the {result.stage} gate: {result.reason}", result)
        proposal = replace(proposal, checklist=tuple((True, item) for _, item in proposal.checklist))
        self._save(proposal, None, "validated on its branch; waiting for approval")
        self.notifications.proposal_created(pid, proposal.title, proposal.severity, now,
                                            len(self.proposals("pending")))
        return Outcome(proposal, f"pending approval on branch {proposal.branch}", result)

    # -- human decisions --------------------------------------------------------------
    def approve(self, ref: str, reviewer: str = "human", notes: str = "") -> Outcome:
        proposal = self.get(ref)
        now = self.clock()
        approved = replace(proposal.transition("approved"),
                           review=Review(reviewer, now, "approved", notes))
        self._save(approved, proposal.status, f"approved by {reviewer}")
        self.breakers.record_approval()
        halted = self.breakers.merge_blocked()
        if halted:
            return Outcome(approved, f"merge deferred: {halted}; then `ouro proposals apply {approved.id}`")
        return self.apply(approved.id)

    def apply(self, ref: str) -> Outcome:
        """Merge an approved proposal through the kernel's approval (its effect merges)."""
        proposal = self.get(ref)
        if proposal.status == "pending":
            raise NotApproved(f"proposal {proposal.id} is pending; approve it first")
        if proposal.status != "approved":
            raise ProposalError(f"proposal {proposal.id} is {proposal.status}; only approved "
                                "proposals can be applied")
        halted = self.breakers.merge_blocked()
        if halted:
            raise Paused(halted)
        reviewer = proposal.review.reviewer if proposal.review else "human"
        result = self.governance.approve(proposal.patch_hash, reviewer)
        merged = self.get(proposal.id)
        if result.status == "rejected" and merged.status == "approved":
            merged = self._fail(merged, f"kernel rejected the apply at {result.stage}: {result.reason}")
        message = {"implemented": f"merged into main as {merged.merge_commit}; monitoring for "
                                  f"{self.monitor.window}",
                   "failed": "merge failed; category paused for 24 h"}.get(merged.status, "")
        return Outcome(merged, message, result)

    def reject(self, ref: str, reason: str, reviewer: str = "human") -> Outcome:
        if not reason.strip():
            raise ProposalError("a rejection needs a reason")
        proposal = self.get(ref)
        now = self.clock()
        rejected = replace(proposal.transition("rejected"),
                           review=Review(reviewer, now, "rejected", reason.strip()))
        self.governance.reject(proposal.patch_hash, reason, reviewer)
        self.repo.delete_branch(proposal.branch)
        self._save(rejected, proposal.status, f"rejected by {reviewer}: {reason.strip()}")
        paused = self.breakers.record_rejection(now)
        note = " Three consecutive rejections: analysis paused for 48 h." if paused else ""
        return Outcome(rejected, f"branch {proposal.branch} deleted.{note}")

    def reset(self, user: str = "human") -> None:
        self.breakers.reset()
        self.governance.record("ImproveBreakersReset", {"by": user, "at": self._now_iso()})

    # -- monitoring -------------------------------------------------------------------
    def tick(self) -> list[Check]:
        """Judge open monitoring windows and send due notifications."""
        now = self.clock()
        checks = self.monitor.check(now)
        for check in checks:
            proposal = self.get(check.proposal_id)
            if check.verdict == "spike":
                self._revert(proposal, check)
            elif check.verdict == "stable":
                stable = proposal.logged(now, f"stable after monitoring: {check.describe()}")
                self.store.save(stable, f"proposal {stable.id}: stable ({check.describe()})")
                self.governance.record("ProposalMonitored", {
                    "proposal": stable.id, "verdict": "stable", "baseline": check.baseline,
                    "after": check.current, "calls": check.calls})
        self.notifications.flush(now, len(self.proposals("pending")))
        return checks

    # -- internals --------------------------------------------------------------------
    def _rate(self, since: datetime, until: datetime) -> tuple[float, int]:
        events = [e for e in self.events() if e.get("event_type") == "tool_call"]
        rate = error_rate(events, since=since, until=until)
        calls = sum(1 for e in events if since <= _ts(e) < until)
        return rate, calls

    def _now_iso(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _save(self, proposal: Proposal, was: str | None, why: str) -> None:
        commit = self.store.save(proposal, f"proposal {proposal.id}: {proposal.status} ({why})")
        self.governance.record("ProposalStatusChanged", {
            "proposal": proposal.id, "from": was, "to": proposal.status, "reason": why,
            "commit": commit, "patch": proposal.patch_hash, "at": self._now_iso()})

    def _merge(self, proposal: Proposal) -> None:
        now = self.clock()
        try:
            merge = self.repo.merge(proposal.branch, f"Merge proposal {proposal.id}: {proposal.title}")
        except GitError as e:
            self._fail(proposal, f"{e.action} failed: {e.reason}")
            return
        done = replace(proposal.transition("implemented"), merge_commit=merge).logged(
            now, f"merged into main as {merge}; monitoring until {now + self.monitor.window:%H:%M}Z")
        self._save(done, proposal.status, f"merged as {merge}")
        self.monitor.open(proposal.id, now)

    def _fail(self, proposal: Proposal, reason: str) -> Proposal:
        now = self.clock()
        failed = proposal.transition("failed").logged(now, f"implementation failed: {reason}")
        self._save(failed, proposal.status, reason)
        self.breakers.record_implementation_failure(proposal.category, now)
        self.notifications.alert(Message(f"Proposal {proposal.id} failed to apply", reason, "high"))
        return failed

    def _revert(self, proposal: Proposal, check: Check) -> None:
        now = self.clock()
        reason = f"error rate spike after merge: {check.describe()}"
        try:
            commit = self.repo.revert(proposal.merge_commit,
                                      f"Revert proposal {proposal.id}: {reason}")
            line = f"auto-reverted as {commit}: {reason}"
        except GitError as e:
            line = f"AUTO-REVERT FAILED ({e.reason}); revert {proposal.merge_commit} by hand"
        reverted = proposal.transition("reverted").logged(now, line)
        self._save(reverted, proposal.status, line)
        self.breakers.halt(f"proposal {proposal.id} auto-reverted ({check.describe()})")
        self.notifications.alert(Message(f"Proposal {proposal.id} auto-reverted", line, "critical"))


def _ts(event: Mapping[str, Any]) -> datetime:
    from ouroboros.capabilities.improve.events import parse_timestamp

    return parse_timestamp(event.get("timestamp"))
