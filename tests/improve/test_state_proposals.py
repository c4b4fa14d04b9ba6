"""Proposals on the kernel's state: an agent's routing, prompt or config, approved like any
proposal, applied through every gate, reverted by the monitor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.planner import CLARIFY, Draft
from ouroboros.capabilities.improve.proposals.state import StateChange, state_diff
from ouroboros.kernel.dsse import new_envelope
from ouroboros.kernel.trust import TRUST_TARGET

from .loopkit import Harness, tool_events

ROUTING = "agents/ops/routing"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    assert harness.rt.propose_and_submit(type="routing", target=ROUTING,
                                         value={"billing_api": 0.8, "answer": 0.2},
                                         reasoning="initial", author="tuner").status == "applied"
    yield harness


def failing(tool: str = "billing_api", agent: str | None = None) -> Finding:
    return Finding("tool_reliability", "high", tool, agent, f"{tool} fails 30% of calls",
                   ("30 of 100 calls failed",), 30, {"failure_rate": 0.3})


def grant_runtime(h: Harness, types: list[str]) -> None:
    rt = h.rt
    policy = rt.value(TRUST_TARGET)
    for d in policy["delegations"]:
        if d["name"] == "runtime":
            d["types"] = sorted({*d["types"], *types})
    patch = rt.propose("trust", TRUST_TARGET, value=policy, author="operator", reasoning="grant")
    envelope = new_envelope(patch.canonical())
    rt.sign(envelope, "root")
    assert rt.submit(envelope).status == "applied"


def test_a_routing_change_waits_for_approval_then_applies_and_reverts(h: Harness) -> None:
    report = h.loop.propose_report([failing()])
    (outcome,) = report.outcomes
    p = outcome.proposal
    assert p.status == "pending" and p.branch == "-" and not report.skipped
    assert '-  "billing_api": 0.8\n+  "billing_api": 0.4' in p.diff
    assert h.rt.value(ROUTING) == {"billing_api": 0.8, "answer": 0.2}  # nothing yet
    h.add(tool_events(h.clock() - timedelta(hours=1), 1, {}))
    done = h.loop.approve(p.id)
    assert done.proposal.status == "implemented"
    assert h.rt.value(ROUTING) == {"billing_api": 0.4, "answer": 0.2}
    inner = done.proposal.merge_commit
    assert any(e.payload["patch_hash"] == inner and e.payload["type"] == "routing"
               for e in h.rt.log("PatchApplied"))
    # errors spike: the inner patch is rolled back with the proposal
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "db_query": 0.9}, seed=3))
    h.clock.advance(minutes=30)
    h.loop.tick()
    assert h.loop.get(p.id).status == "reverted"
    assert h.rt.value(ROUTING) == {"billing_api": 0.8, "answer": 0.2}
    assert h.loop.status()["halted"]
    assert h.rt.verify().events == len(h.rt.log())


def test_a_prompt_change_needs_the_runtime_key_delegated(h: Harness) -> None:
    target = "agents/support/prompt"
    envelope = new_envelope(h.rt.propose("prompt", target, value="You are a support agent.",
                                         author="operator", reasoning="first").canonical())
    h.rt.sign(envelope, "root")
    assert h.rt.submit(envelope).status == "applied"
    corrected = Finding("user_corrections", "medium", None, "support",
                        "users corrected support 12 times", ("12 corrections",), 12)
    (skip,) = h.loop.propose_report([corrected]).skipped
    assert "would help" in skip.reason and "ouro trust grant" in skip.reason
    grant_runtime(h, ["prompt"])
    (outcome,) = h.loop.propose_report([corrected]).outcomes
    h.loop.approve(outcome.proposal.id)
    assert h.rt.value(target) == "You are a support agent.\n" + CLARIFY


def test_a_state_proposal_made_stale_fails_at_approval(h: Harness) -> None:
    (outcome,) = h.loop.propose_report([failing()]).outcomes
    assert h.rt.propose_and_submit(type="routing", target=ROUTING, value={"billing_api": 0.6},
                                   reasoning="a human tuned it", author="tuner").status \
        == "applied"
    done = h.loop.approve(outcome.proposal.id)
    assert done.proposal.status == "failed"
    assert "changed since the proposal was made" in done.proposal.log[-1]
    assert h.rt.value(ROUTING) == {"billing_api": 0.6}


def test_a_state_change_that_grants_is_blocked(h: Harness) -> None:
    grant_runtime(h, ["config"])
    target = "agents/ops/config"
    old = {"timeout_s": {"search": 10}}
    assert h.rt.propose_and_submit(type="config", target=target, value=old, reasoning="x",
                                   author="tuner").status == "applied"
    new = {**old, "allowed_tools": ["shell"]}
    change = StateChange("config", target, old, new)
    draft = Draft("state-config:evil", "Tune ops", "bugfix", "high", "p", ("e",), "r", "s",
                  state_diff(change), (f"kernel/{target}",), "none", (), state=change)
    out = h.loop.propose(draft)
    assert out is not None and out.proposal.status == "blocked"
    assert "would grant shell" in out.proposal.review.notes  # type: ignore[union-attr]
    assert h.rt.value(target) == old


def test_timeouts_in_a_config_target_double_the_timeout(h: Harness) -> None:
    grant_runtime(h, ["config"])
    target = "agents/ops/config"
    assert h.rt.propose_and_submit(type="config", target=target, value={
        "timeout_s": {"billing_api": 20, "db": 5}}, reasoning="x",
        author="tuner").status == "applied"
    timeout = Finding("timeout_cluster", "high", "billing_api", None, "billing_api timed out",
                      ("timeouts",), 9)
    (outcome,) = h.loop.propose_report([timeout]).outcomes
    h.loop.approve(outcome.proposal.id)
    assert h.rt.value(target) == {"timeout_s": {"billing_api": 40, "db": 5},
                                  "max_retries": {"billing_api": 2}}


def test_a_state_revert_whose_rollback_is_refused_is_a_failed_revert(h: Harness) -> None:
    # a human tunes the routing again after the merge: the inner rollback is refused
    (outcome,) = h.loop.propose_report([failing()]).outcomes
    h.add(tool_events(h.clock() - timedelta(hours=1), 1, {}))
    done = h.loop.approve(outcome.proposal.id)
    assert done.proposal.status == "implemented"
    assert h.rt.propose_and_submit(type="routing", target=ROUTING, value={"billing_api": 0.5},
                                   reasoning="a human tuned it", author="tuner").status \
        == "applied"
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "db_query": 0.9}, seed=3))
    h.clock.advance(minutes=30)
    h.loop.tick()
    p = h.loop.get(outcome.proposal.id)
    assert p.status == "revert_failed" and "AUTO-REVERT FAILED" in p.log[-1]
    assert h.rt.value(ROUTING) == {"billing_api": 0.5}
    assert h.rt.value(f"improve/proposals/{p.id}") is not None  # still applied in the kernel
    assert h.loop.status()["halted"] and "revert failed" in h.loop.status()["halt_reason"]
