"""The loop's proposals on kernel state (see :mod:`.state` for the rules): drafting,
proposing, the test and audit gates, applying the approved change and reverting it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jsonschema

from ouroboros.capabilities.improve.proposals.notify import Message
from ouroboros.capabilities.improve.proposals.planner import Draft
from ouroboros.capabilities.improve.proposals.policy import grants
from ouroboros.capabilities.improve.proposals.proposal import (
    Proposal,
    Review,
    markdown_block,
    markdown_line,
)
from ouroboros.capabilities.improve.proposals.state import state_drafts
from ouroboros.capabilities.improve.proposals.writer import Skip
from ouroboros.kernel import OuroError

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop, Outcome


class StateFlow:
    def __init__(self, loop: ImproveLoop) -> None:
        self.loop = loop

    def drafts(self, skipped: list[Skip]) -> list[Draft]:
        """Kernel-state drafts for findings no file change covers; the runtime key must be
        delegated the inner patch's type (else the finding says how to allow it)."""
        loop = self.loop
        if not skipped:
            return []
        drafts = []
        for draft in state_drafts([s.finding for s in skipped], loop.governance.state_values()):
            change = draft.state
            why = loop.governance.may_sign(change.type, change.target)
            if why is None:
                drafts.append(draft)
            else:
                ids = {id(f) for f in draft.findings}
                skipped[:] = [s for s in skipped if id(s.finding) not in ids]
                for f in draft.findings:
                    skipped.append(Skip(f, f"a {change.type} change to {change.target} would "
                                           f"help, but {why} (ouro trust grant <runtime key> "
                                           f"--types {change.type} --targets 'agents/*')"))
        return drafts

    def propose(self, draft: Draft, pid: str, now: datetime) -> Outcome:
        from ouroboros.capabilities.improve.proposals.loop import Outcome

        loop = self.loop
        change = draft.state
        base = loop.governance.state_hash(change.target)
        proposal = Proposal(
            id=pid, title=markdown_line(draft.title), created=now,
            category=draft.category,  # type: ignore[arg-type]
            severity=draft.severity,  # type: ignore[arg-type]
            problem=markdown_block(draft.problem),
            evidence=tuple(markdown_line(e) for e in draft.evidence),
            root_cause=markdown_block(draft.root_cause), solution=markdown_block(draft.solution),
            diff=draft.diff, affected_files=tuple(markdown_line(f) for f in draft.affected_files),
            risk=markdown_block(draft.risk), base_commit=f"{change.target}@{base}", key=draft.key)
        value = {"proposal": pid, "kind": "state", "type": change.type, "target": change.target,
                 "base": base, "value": change.new, "category": draft.category}
        result = loop.governance.submit_state(value, f"{draft.title}: {draft.root_cause}")
        proposal = replace(proposal, patch_hash=result.patch_hash)
        if result.status != "pending":
            proposal = replace(proposal.transition("blocked"), review=Review(
                f"gate:{result.stage}", now, "blocked", result.reason))
            loop._save(proposal, None, f"blocked at the {result.stage} gate: {result.reason}")
            loop.breakers.record_rejection(now)
            return Outcome(proposal, f"blocked at the {result.stage} gate: {result.reason}", result)
        proposal = replace(proposal, checklist=tuple((True, item) for _, item in proposal.checklist))
        loop._save(proposal, None, f"a {change.type} change to {change.target}; waiting for approval")
        loop.notifications.proposal_created(pid, proposal.title, proposal.severity, now,
                                            len(loop.proposals("pending")))
        return Outcome(proposal, f"pending approval: a {change.type} change to {change.target}",
                       result)

    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]:
        loop = self.loop
        target = str(value["target"])
        if loop.governance.state_hash(target) != value["base"]:
            return False, f"{target} changed since the proposal was made"
        ptype = loop.rt.registry.types.get(str(value["type"]))
        if ptype is None:
            return False, f"no patch type {value['type']}"
        errors = list(jsonschema.Draft202012Validator(ptype.value_schema).iter_errors(
            value["value"]))
        if errors:
            return False, f"the new {value['type']} value is invalid: {errors[0].message}"
        return True, f"{value['type']} value valid against {target}'s current value"

    def audit(self, value: Mapping[str, Any]) -> list[str]:
        """No grants through a state change either (the kernel's Rego audit also scans every
        string of the new value for injection markers and URLs)."""
        loop = self.loop
        old = loop.rt.value(str(value["target"]))
        before, after = grants(old), grants(value["value"])
        return [f"{value['target']} would grant {what} at {'.'.join(where)}"
                for where, what in sorted(after - before)]

    def apply(self, proposal: Proposal, value: Mapping[str, Any]) -> None:
        loop = self.loop
        now = loop.clock()
        result = loop.governance.submit_inner(value, f"approved proposal {proposal.id}")
        if result.status != "applied":
            loop._fail(proposal, f"the {value['type']} patch was {result.status} at the "
                                 f"{result.stage} gate: {result.reason}")
            return
        done = replace(proposal.transition("implemented"), merge_commit=result.patch_hash).logged(
            now, f"applied {value['type']} {value['target']} as {result.patch_hash[:19]}…; "
                 f"monitoring until {now + loop.monitor.window:%H:%M}Z")
        # before "implemented" (see landing.merge)
        loop.monitor.open(proposal.id, now, proposal.key)
        loop._save(done, proposal.status, f"applied as {result.patch_hash}")

    def revert(self, proposal: Proposal, reason: str) -> None:
        loop = self.loop
        now = loop.clock()
        try:
            loop.governance.rollback(proposal.merge_commit)
            line = f"auto-reverted: rolled back {proposal.merge_commit[:19]}…: {reason}"
        except OuroError as e:  # the change stands: never "reverted", the loop halts
            line = (f"AUTO-REVERT FAILED ({e.message}) after: {reason}; roll back "
                    f"{proposal.merge_commit} by hand, then `ouro rollback --patch "
                    f"{proposal.patch_hash}`")
            loop._save(proposal.transition("revert_failed").logged(now, line), proposal.status,
                       line)
            loop.breakers.halt(f"proposal {proposal.id}: automatic revert failed ({reason})")
            loop.notifications.alert(Message(f"Proposal {proposal.id}: automatic revert FAILED",
                                             line, "critical"), now)
            return
        reverted = proposal.transition("reverted").logged(now, line)
        loop._save(reverted, proposal.status, line)
        try:
            loop.governance.rollback(proposal.patch_hash)
        except OuroError as e:
            loop.store.save(reverted.logged(now, f"kernel rollback refused: {e.message}"),
                            f"proposal {proposal.id}: kernel rollback refused")
        loop.breakers.halt(f"proposal {proposal.id} auto-reverted ({reason})")
        loop.notifications.alert(Message(f"Proposal {proposal.id} auto-reverted", line,
                                         "critical"), now)
