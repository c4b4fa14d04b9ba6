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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.intake.events import LOCAL_SOURCE, format_timestamp
from ouroboros.capabilities.improve.proposals import branch_gates, landing
from ouroboros.capabilities.improve.proposals.breakers import Breakers
from ouroboros.capabilities.improve.proposals.forge import Forge
from ouroboros.capabilities.improve.proposals.governance import TARGET_PREFIX, Governance
from ouroboros.capabilities.improve.proposals.landing import NO_BRANCH
from ouroboros.capabilities.improve.proposals.monitor import (
    Check,
    Monitor,
    Tally,
    tally,
)
from ouroboros.capabilities.improve.proposals.notify import (
    Message,
    NotificationBatcher,
    Notifier,
    StdoutNotifier,
)
from ouroboros.capabilities.improve.proposals.planner import Draft
from ouroboros.capabilities.improve.proposals.policy import (
    PolicyConfig,
)
from ouroboros.capabilities.improve.proposals.proposal import (
    CATEGORIES,
    OPEN_STATUSES,
    SEVERITIES,
    Proposal,
    ProposalError,
    Review,
    UnreadableState,
    markdown_block,
    markdown_line,
)
from ouroboros.capabilities.improve.proposals.publish import Noticed, Publisher
from ouroboros.capabilities.improve.proposals.remote import clone
from ouroboros.capabilities.improve.proposals.repo import (
    GitError,
    TargetRepo,
    exclusive,
    proposal_branch,
)
from ouroboros.capabilities.improve.proposals.state_flow import StateFlow
from ouroboros.capabilities.improve.proposals.store import ProposalStore
from ouroboros.capabilities.improve.proposals.target_config import TargetConfig, load_target_config
from ouroboros.capabilities.improve.proposals.writer import RuleWriter, Skip, Writer
from ouroboros.kernel import OuroError, Runtime, SubmitOutcome
from ouroboros.kernel.settings import ImproveSettings
from ouroboros.storage.files import UNBOUNDED

#: ``events(since, until)``: sanitized telemetry events in ``[since, until)`` (a source
#: may return more; the loop filters). ``TelemetryStore.events`` fits.
EventSource = Callable[[datetime, datetime], Iterable[Mapping[str, Any]]]




class Paused(ProposalError):
    """A circuit breaker forbids this now."""


class NotApproved(ProposalError):
    """The proposal is waiting for a human's approval."""


@dataclass(frozen=True)
class Outcome:
    proposal: Proposal
    message: str
    gate: SubmitOutcome | None = None


@dataclass(frozen=True)
class Report:
    """What one round of proposing did: the outcomes, and the findings with no proposal."""

    outcomes: list[Outcome]
    skipped: list[Skip]


class ImproveLoop:
    def __init__(
        self,
        rt: Runtime,
        *,
        events: EventSource = lambda since, until: (),
        notifier: Notifier | None = None,
        window: timedelta | None = None,
        policy: PolicyConfig | None = None,
        target: Path | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:8],
        clock: Callable[[], datetime] | None = None,
        settings: ImproveSettings | None = None,
        writer: Writer | None = None,
        forge: Forge | None = None,
        trusted_sources: Iterable[str] = (),
    ) -> None:
        self.rt = rt
        #: Telemetry sources a window may be judged on alone (the runtime's own and the
        #: configured ``telemetry.trusted_sources``); any other lone source is held.
        trusted = frozenset({LOCAL_SOURCE, *trusted_sources})
        self._clock = clock or rt.clock.now
        self.root = Path(rt.home) / "improve"
        self.settings = settings or ImproveSettings()
        # processes starting at once seed once (a clone may take minutes: no bound)
        with exclusive(self.root / "setup.lock", timeout=UNBOUNDED):
            self.repo = self._target(target)
            self.store = ProposalStore.init(self.root / "proposals")
        self.breakers = Breakers(self.root / "breakers.json")
        self.notifications = NotificationBatcher(self.root / "notifications.json",
                                                 notifier or StdoutNotifier())
        mon = self.settings.monitor
        self.monitor = Monitor(self.root / "monitor.json", self._rate,
                               window or timedelta(minutes=mon.window_minutes),
                               mon.max_rise, mon.min_calls, trusted)
        self.governance = Governance(rt)
        self.events = events
        self._policy = policy  # an explicit policy wins over the target's configuration
        self.writer: Writer = writer or RuleWriter()
        self.publisher = Publisher(self.repo, self.root / "pulls.json", forge,
                                   self.settings.target.push)
        self.new_id = new_id
        self._configs: dict[str, TargetConfig] = {}
        self._remote_merges: dict[str, str] = {}
        self.state_flow = StateFlow(self)
        self.governance.bind(self)

    def _target(self, target: Path | None) -> TargetRepo:
        """The target checkout: an explicit path, a clone of the configured repository,
        or (nothing configured) a repository seeded from the example deployment."""
        t = self.settings.target
        path = target or self.root / "target"
        if not (path / ".git").exists() and any(
                (self.root / "proposals").glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/*.md")):
            # seeding or cloning it again would lose the history the proposals stand on
            again = (f"`ouro improve connect {t.repo}` clones it again" if t.repo else
                     f"remove {self.root} to start over with the example")
            raise GitError("target", f"the target repository {path} is missing, but proposals "
                           f"were made on it; restore it, or {again}")
        if t.repo and target is None:
            if not (path / ".git").exists():
                return clone(t.repo, path, t.branch, t.remote)
            repo = TargetRepo(path, t.branch, t.remote)
            if not repo.branch_exists(t.branch):
                raise GitError("target", f"{path} has no branch {t.branch}")
            return repo
        return TargetRepo.init(path, main=t.branch)

    @property
    def policy(self) -> PolicyConfig:
        return self._policy or self.target_config(self.repo.head()).policy

    def target_config(self, at: str) -> TargetConfig:
        """The checks for proposals on base ``at`` (the repository's own config at ``at``)."""
        if at not in self._configs:
            config = load_target_config(lambda p: self.repo.read(at, p), at, self.settings)
            if self._policy is not None:
                config = replace(config, policy=self._policy)
            self._configs[at] = config
        return self._configs[at]

    def clock(self) -> datetime:
        """The loop's time (the kernel's clock unless one is injected, e.g. by the demo)."""
        return self._clock().replace(microsecond=0)

    # -- reading ----------------------------------------------------------------------
    def proposals(self, status: str | None = None) -> list[Proposal]:
        return [p for p in self.store.all() if status is None or p.status == status]

    def get(self, ref: str) -> Proposal:
        return self.store.get(ref)

    # -- gates (called by the kernel through governance) -------------------------------
    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]:
        """Test gate (see :func:`.branch_gates.test_gate`)."""
        if value.get("kind") == "state":
            return self.state_flow.test(value)
        return branch_gates.test_gate(self, value)

    def audit(self, value: Mapping[str, Any]) -> list[str]:
        """Audit gate (see :func:`.branch_gates.audit_gate`)."""
        if value.get("kind") == "state":
            return self.state_flow.audit(value)
        return branch_gates.audit_gate(self, value)

    def effect(self, value: Mapping[str, Any]) -> None:
        """Apply: merge the approved proposal's branch into main and start monitoring.

        Reached through ``ouro proposals approve`` or directly through the kernel's
        ``ouro approve <patch>``; the latter is recorded as the approval it is.
        """
        proposal = self.get(str(value["proposal"]))
        if proposal.status == "pending":
            approved = replace(proposal.transition("approved"),
                               review=Review("ouro approve", self.clock(), "approved"))
            self._save(approved, proposal.status, "approved through the kernel (`ouro approve`)")
            self.breakers.record_approval()
            proposal = approved
        if value.get("kind") == "state":
            self.state_flow.apply(proposal, value)
        else:
            self._merge(proposal)

    def rolled_back(self, proposal_id: str) -> None:
        """Effect of a kernel rollback of the proposal's patch (``ouro rollback``): revert
        the merge on main too. A human's decision, so no breaker trips."""
        proposal = self.get(proposal_id)
        if proposal.status not in ("implemented", "revert_failed"):
            return  # e.g. the monitor already reverted it
        now = self.clock()
        try:
            if proposal.branch == NO_BRANCH:  # a state change: roll the inner patch back too
                self.governance.rollback(proposal.merge_commit)
                commit = proposal.merge_commit
            else:
                commit = self.repo.revert(proposal.merge_commit, f"Revert proposal "
                                          f"{proposal.id}: rolled back in the kernel")
        except (GitError, OuroError) as e:
            # e.g. a later merge edited the same lines: the kernel rolled the patch back but
            # the change is still on main. Never "reverted"; surfaced once, retried on
            # every sync (a human who clears the way lets it through)
            if proposal.status == "implemented":
                why = e.reason if isinstance(e, GitError) else e.message
                line = (f"REVERT FAILED after a kernel rollback (`ouro rollback`): "
                        f"{why[:300]}; the change is still live: revert "
                        f"{proposal.merge_commit} by hand")
                self.monitor.close(proposal.id)
                self._save(proposal.transition("revert_failed").logged(now, line),
                           proposal.status, line)
                self.breakers.halt(f"proposal {proposal.id}: revert failed after a kernel "
                                   "rollback")
                self.notifications.alert(Message(f"Proposal {proposal.id}: revert FAILED",
                                                 line, "critical"), now)
            return
        self.monitor.close(proposal.id)
        line = f"reverted as {commit} by a kernel rollback (`ouro rollback`)"
        self._save(proposal.transition("reverted").logged(now, line), proposal.status, line)

    # -- proposing --------------------------------------------------------------------
    def propose_from_findings(self, findings: Iterable[Finding]) -> list[Outcome]:
        """Write drafts for ``findings`` at main's head and submit each one."""
        return self.propose_report(findings).outcomes

    def propose_report(self, findings: Iterable[Finding]) -> Report:
        """Like :meth:`propose_from_findings`, also saying why a finding made no proposal."""
        self._check_not_paused()
        head = self.repo.head()
        found = list(findings)
        open_keys = {p.key for p in self.store.all() if p.status in OPEN_STATUSES}
        written = self.writer.write(found, self.repo, head, self.target_config(head))
        outcomes, skipped = [], list(written.skipped)
        state = self.state_flow.drafts(skipped)
        covered = {id(f) for d in state for f in d.findings}
        skipped = [s for s in skipped if id(s.finding) not in covered]
        for draft in [*written.drafts, *state]:
            if self.breakers.category_blocked(draft.category, self.clock()):
                skipped += [Skip(f, f"category {draft.category} is paused") for f in draft.findings]
                continue  # that category is paused; the other categories still go ahead
            if draft.key in open_keys:
                skipped += [Skip(f, f"an open proposal already has the fix {draft.key}")
                            for f in draft.findings]
                continue
            outcome = self.propose(draft)
            if outcome is not None:
                outcomes.append(outcome)
        return Report(outcomes, skipped)

    def propose(self, draft: Draft, base: str | None = None) -> Outcome | None:
        """Submit one draft through the gates; None when an open proposal already has its key.

        One proposing process at a time per workspace: the open-key check and the
        submission are one step (concurrent evaluations opened the same fix twice)."""
        with exclusive(self.root / "propose.lock", timeout=UNBOUNDED):  # gates take minutes
            return self._propose(draft, base)

    def _propose(self, draft: Draft, base: str | None) -> Outcome | None:
        now = self.clock()
        self._check_not_paused(draft.category)
        if any(p.key == draft.key and p.status in OPEN_STATUSES for p in self.store.all()):
            return None
        if draft.category not in CATEGORIES or draft.severity not in SEVERITIES:
            raise ProposalError(f"bad category/severity {draft.category}/{draft.severity}")
        pid = self.new_id()
        while self.store.exists(pid) or self.repo.branch_exists(proposal_branch(pid)):
            pid = self.new_id()
        if draft.state is not None:
            return self.state_flow.propose(draft, pid, now)
        proposal = Proposal(
            id=pid, title=markdown_line(draft.title), created=now,
            category=draft.category, severity=draft.severity,  # type: ignore[arg-type]
            problem=markdown_block(draft.problem),
            evidence=tuple(markdown_line(e) for e in draft.evidence),
            root_cause=markdown_block(draft.root_cause), solution=markdown_block(draft.solution),
            diff=draft.diff, affected_files=tuple(markdown_line(f) for f in draft.affected_files),
            risk=markdown_block(draft.risk),
            base_commit=self.repo.rev(base or "main"), key=draft.key,
            branch=proposal_branch(pid),
        )
        value = {
            "proposal": pid, "repository": str(self.repo.path), "base": proposal.base_commit,
            "branch": proposal.branch, "files": list(draft.affected_files) or ["-"],
            "category": draft.category,
        }
        try:
            result = self.governance.submit(value, draft.diff,
                                            f"{draft.title}: {draft.root_cause}")
        except Exception:
            self.repo.delete_branch(proposal.branch)  # never leave a branch without a proposal
            raise
        proposal = replace(proposal, patch_hash=result.patch_hash)
        if result.status != "pending":
            self.repo.delete_branch(proposal.branch)  # nothing of a blocked proposal remains
            proposal = replace(proposal.transition("blocked"), review=Review(
                f"gate:{result.stage}", now, "blocked", result.reason))
            self._save(proposal, None, f"blocked at the {result.stage} gate: {result.reason}")
            self.breakers.record_rejection(now)
            return Outcome(proposal, f"blocked at the {result.stage} gate: {result.reason}", result)
        proposal = replace(proposal, checklist=tuple((True, item) for _, item in proposal.checklist))
        for line in self.publisher.publish(proposal, _pull_body(proposal)):
            proposal = proposal.logged(now, line)
        self._save(proposal, None, "validated on its branch; waiting for approval")
        self.notifications.proposal_created(pid, proposal.title, proposal.severity, now,
                                            len(self.proposals("pending")))
        return Outcome(proposal, f"pending approval on branch {proposal.branch}", result)

    # -- human decisions --------------------------------------------------------------
    def approve(self, ref: str, reviewer: str = "human", notes: str = "") -> Outcome:
        proposal = self.get(ref)
        self._check_own_patch(proposal)
        now = self.clock()
        approved = replace(proposal.transition("approved"),
                           review=Review(reviewer, now, "approved", notes))
        self._save(approved, proposal.status, f"approved by {reviewer}")
        self.breakers.record_approval()
        try:
            self._check_not_paused()
        except Paused as e:
            return Outcome(approved, f"merge deferred: {e}; then `ouro proposals apply {approved.id}`")
        return self.apply(approved.id)

    def apply(self, ref: str) -> Outcome:
        """Merge an approved proposal through the kernel's approval (its effect merges)."""
        proposal = self.get(ref)
        if proposal.status == "pending":
            raise NotApproved(f"proposal {proposal.id} is pending; approve it first")
        if proposal.status != "approved":
            raise ProposalError(f"proposal {proposal.id} is {proposal.status}; only approved "
                                "proposals can be applied")
        self._check_not_paused()
        self._check_own_patch(proposal)
        if proposal.branch != NO_BRANCH and self.governance.is_pending(proposal.patch_hash):
            # before the kernel decides: a checkout the merge would refuse (detached, edited
            # files) must not leave the patch applied in the kernel and nothing merged
            self.repo._require_main_checked_out()
        if not self.governance.is_pending(proposal.patch_hash):
            self.sync()
            synced = self.get(proposal.id)
            return Outcome(synced, f"the kernel had already decided on {proposal.patch_hash[:19]}…")
        result = self.governance.approve(proposal.patch_hash)
        merged = self.get(proposal.id)
        if result.status != "applied" and merged.status == "approved":
            self.repo.delete_branch(merged.branch)
            merged = self._fail(merged, f"rejected at the {result.stage} gate on approval: "
                                        f"{result.reason}")
        minutes = int(self.monitor.window.total_seconds() // 60)
        message = {"implemented": f"merged into main as {merged.merge_commit[:12]}; monitoring "
                                  f"the error rate for {minutes} min",
                   "failed": f"{merged.log[-1] if merged.log else 'merge failed'}; category "
                             f"{merged.category} paused for 24 h"}.get(merged.status, "")
        return Outcome(merged, message, result)

    def reject(self, ref: str, reason: str, reviewer: str = "human") -> Outcome:
        if not reason.strip():
            raise ProposalError("a rejection needs a reason")
        proposal = self.get(ref)
        self._check_own_patch(proposal)
        now = self.clock()
        rejected = replace(proposal.transition("rejected"),
                           review=Review(reviewer, now, "rejected", reason.strip()))
        if self.governance.is_pending(proposal.patch_hash):
            self.governance.reject(proposal.patch_hash, f"{reviewer}: {reason.strip()}")
        self.publisher.withdraw(proposal, reason.strip())
        self.repo.delete_branch(proposal.branch)
        self._save(rejected, proposal.status, f"rejected by {reviewer}: {reason.strip()}")
        paused = self.breakers.record_rejection(now)
        note = " Three consecutive rejections: analysis paused for 48 h." if paused else ""
        return Outcome(rejected, f"branch {proposal.branch} deleted.{note}")

    def reset(self, user: str = "human") -> None:
        """A human's reset: lifts the halt, the category pauses and the author pause."""
        self.breakers.reset()
        if self.governance.paused_until(self.clock()):
            self.governance.resume()
        self.governance.record("ImproveBreakersReset", {"by": user, "at": self._now_iso()})

    def status(self) -> dict[str, Any]:
        now = self.clock()
        self.monitor.reload()  # windows another process opened or closed count too
        return {**self.breakers.as_dict(), "analysis_paused_until": self.governance.paused_until(now),
                "monitoring": sorted(self.monitor.windows),
                "pending": len(self.proposals("pending"))}

    # -- monitoring -------------------------------------------------------------------
    def sync(self) -> list[Proposal]:
        """Align open proposals with decisions taken in the kernel directly.

        ``ouro approve <patch>`` without the loop attached (the merge did not run),
        ``ouro reject <patch>`` and ``ouro rollback`` (when its effect did not reach the
        loop) leave a proposal behind here; this catches up.
        """
        changed = []
        for proposal in [*self.proposals("pending"), *self.proposals("approved")]:
            digest = proposal.patch_hash
            if self.governance.is_pending(digest):
                continue
            if self.governance.is_applied(digest):
                value = self.governance.value(proposal.id)
                if value is None:
                    continue  # applied and already rolled back in the kernel: nothing to merge
                self.effect(value)
            elif (rejection := self.governance.rejection(digest)) is not None:
                reason = f"rejected in the kernel at {rejection['stage']}: {rejection['reason']}"
                self.repo.delete_branch(proposal.branch)
                if proposal.status == "pending":
                    done = replace(proposal.transition("rejected"), review=Review(
                        "ouro reject", self.clock(), "rejected", reason))
                    self._save(done, proposal.status, reason)
                    self.breakers.record_rejection(self.clock())
                else:
                    self._fail(proposal, reason)
            else:
                continue
            changed.append(self.get(proposal.id))
        for proposal in [*self.proposals("implemented"), *self.proposals("revert_failed")]:
            if self.governance.value(proposal.id) is None:  # rolled back in the kernel
                self.rolled_back(proposal.id)
                changed.append(self.get(proposal.id))
        return changed

    def notice(self) -> list[Noticed]:
        """Pending proposals a human merged (or closed) on the remote or the forge: a merge
        that the remote really holds is approved and applied here; a forge's claim the
        remote contradicts is reported and changes nothing."""
        noticed = self.publisher.notice(self.proposals("pending"))
        for seen in noticed:
            proposal = self.get(seen.proposal_id)
            now = self.clock()
            if seen.verdict == "disputed":
                self.store.save(proposal.logged(now, seen.detail),
                                f"proposal {proposal.id}: forge claim disputed")
                self.notifications.alert(Message(f"Proposal {proposal.id}: merge not found",
                                                 seen.detail, "high"), now)
            elif seen.verdict == "closed":
                self.reject(proposal.id, seen.detail, reviewer="forge")
            elif seen.merge_commit:
                self._remote_merges[proposal.id] = seen.merge_commit
                self.approve(proposal.id, reviewer=f"forge:{seen.by or 'human'}",
                             notes=seen.detail)
        return noticed

    def tick(self) -> list[Check]:
        """Catch up with kernel decisions and merges done on the forge, judge open
        monitoring windows, send due notifications."""
        self.sync()
        self.notice()
        now = self.clock()
        checks = self.monitor.check(now)
        for check in checks:
            proposal = self.get(check.proposal_id)
            if proposal.status != "implemented":
                continue  # reverted meanwhile (`ouro rollback`, another process)
            if check.verdict == "spike":
                self._revert(proposal, check)
            elif check.verdict == "watching" and check.extended_until:
                line = (f"window ended with {check.describe()}" if check.held else
                        f"window ended with {check.calls} tool calls against "
                        f"{check.baseline_calls} before (no tool calls, or far fewer: an "
                        f"outage or late telemetry); watching until {check.extended_until}")
                self.store.save(proposal.logged(now, line),
                                f"proposal {proposal.id}: silent window extended")
            elif check.verdict == "silent":
                self._silent(proposal, check, now)
            elif check.verdict == "stable":
                stable = proposal.logged(now, f"stable after monitoring: {check.describe()}")
                self.store.save(stable, f"proposal {stable.id}: stable ({check.describe()})")
                self.governance.record("ProposalMonitored", {
                    "proposal": stable.id, "verdict": "stable", "baseline": check.baseline,
                    "after": check.current, "calls": check.calls})
        self.notifications.flush(now, len(self.proposals("pending")))
        return checks

    # -- internals --------------------------------------------------------------------
    def _silent(self, proposal: Proposal, check: Check, now: datetime) -> None:
        """A window still silent after its extension: never stable. Halt and alert rather
        than revert (silence may be telemetry that stopped, not the change); a human
        looks, then reverts (`ouro rollback`) or resets."""
        line = (f"SILENT after monitoring: {check.calls} tool calls since the merge against "
                f"{check.baseline_calls} in the hour before; no verdict, all proposals halted"
                if check.held is None else
                f"HELD after monitoring: {check.describe()}; all proposals halted")
        self.store.save(proposal.logged(now, line), f"proposal {proposal.id}: silent window")
        self.governance.record("ProposalMonitored", {
            "proposal": proposal.id, "verdict": "silent", "baseline": check.baseline,
            "after": check.current, "calls": check.calls,
            "baseline_calls": check.baseline_calls, "held": check.held})
        self.breakers.halt(f"proposal {proposal.id}'s monitoring window ended silent "
                           f"({check.calls} tool calls against {check.baseline_calls} before)")
        self.notifications.alert(Message(f"Proposal {proposal.id}: telemetry silent after "
                                          "merge", line, "critical"), now)

    def _check_own_patch(self, proposal: Proposal) -> None:
        """The kernel patch a proposal file names must be that proposal's, with the diff the
        file shows: an edited ``Patch`` field would have a human's decision on one proposal
        approve (and merge) or reject another's patch, an edited diff show the reviewer a
        change other than the one merged."""
        patch = self.governance.pending_patch(proposal.patch_hash)
        if patch is None:
            return
        op = patch.get("op")
        target, value = str(patch.get("target")), op.get("value") if isinstance(op, dict) else None
        restore = "its file was edited (restore it from the proposals repository's git)"
        if target != TARGET_PREFIX + proposal.id:
            raise UnreadableState(f"proposal {proposal.id} names the kernel patch "
                                  f"{proposal.patch_hash[:19]}…, which is {target}'s; {restore}")
        if isinstance(value, Mapping) and "diff" in value and \
                _lines(self.governance.diff_of(value)) != _lines(proposal.diff):
            raise UnreadableState(f"proposal {proposal.id} shows a diff other than its kernel "
                                  f"patch's; {restore}")

    def _check_not_paused(self, category: str | None = None) -> None:
        now = self.clock()
        blocked = (self.breakers.category_blocked(category, now) if category
                   else self.breakers.analysis_blocked(now))
        if blocked:
            raise Paused(blocked)
        until = self.governance.paused_until(now)
        if until:
            raise Paused(f"the kernel paused author 'improve' until {until} after repeated "
                         "rejections; `ouro proposals reset` resumes it")

    def _rate(self, since: datetime, until: datetime, key: str | None) -> Tally:
        return tally(self.events(since, until), format_timestamp(since),
                     format_timestamp(until), key)

    def _now_iso(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _save(self, proposal: Proposal, was: str | None, why: str) -> None:
        commit = self.store.save(proposal, f"proposal {proposal.id}: {proposal.status} ({why})")
        self.governance.record("ProposalStatusChanged", {
            "proposal": proposal.id, "from": was, "to": proposal.status, "reason": why,
            "commit": commit, "patch": proposal.patch_hash, "at": self._now_iso()})

    def _fail(self, proposal: Proposal, reason: str) -> Proposal:
        now = self.clock()
        failed = proposal.transition("failed").logged(now, f"implementation failed: {reason}")
        self._save(failed, proposal.status, reason)
        self.breakers.record_implementation_failure(proposal.category, now)
        self.notifications.alert(Message(f"Proposal {proposal.id} failed to apply", reason, "high"),
                                 now)
        return failed

    def _merge(self, proposal: Proposal) -> None:
        landing.merge(self, proposal)

    def _revert(self, proposal: Proposal, check: Check | None, why: str = "") -> None:
        landing.revert(self, proposal, check, why)


def _lines(diff: str) -> list[str]:
    """A diff's lines as the markdown file keeps them (it reads back CR and CRLF as LF)."""
    return diff.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")


def _pull_body(p: Proposal) -> str:
    return (f"Proposal {p.id} ({p.category}, {p.severity}) from the Ouroboros improvement "
            f"loop.\n\n{p.problem}\n\n**Solution**: {p.solution}\n\n**Risk**: {p.risk}\n\n"
            f"Merge this pull request, or run `ouro proposals approve {p.id}`.")
