"""The loop end to end on real git: propose -> approve -> merge -> monitor -> revert."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.capabilities.improve.proposals.loop import NotApproved, Paused
from ouroboros.capabilities.improve.proposals.proposal import ProposalError

from .loopkit import T0, Harness, tool_events


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    return h


def _propose_timeout_fix(h: Harness) -> str:
    findings = analyse(h.events, h.clock())
    outcomes = h.loop.propose_from_findings(findings)
    assert [o.proposal.key for o in outcomes] == ["tool-timeout:web_search"]
    return outcomes[0].proposal.id


def test_web_search_timeouts_become_a_validated_pending_proposal(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    assert p.status == "pending" and p.category == "bugfix" and p.severity == "high"
    for line in ("-    timeout_s: 30", "+    timeout_s: 60", "+    max_retries: 2"):
        assert line in p.diff.splitlines()
    # the branch exists from the pinned base with exactly the diff; main is untouched
    assert h.loop.repo.branch_exists(p.branch)
    assert h.loop.repo.rev(f"{p.branch}~1") == p.base_commit == h.loop.repo.head()
    branch_cfg = yaml.safe_load(h.loop.repo.read(p.branch, "agents.yaml") or "")
    assert branch_cfg["tools"]["web_search"] == {"timeout_s": 60, "max_retries": 2}
    assert "timeout_s: 30" in (h.main_file("agents.yaml") or "")
    md = (h.loop.store.root / p.relpath).read_text()
    assert f"**ID**: {pid}" in md and "**Status**: pending" in md and "```diff" in md
    assert pid in (h.loop.store.root / "index.md").read_text()


def test_healthy_tools_get_no_proposals(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add(tool_events(T0, 24, {}))
    assert h.loop.propose_from_findings(analyse(h.events, h.clock())) == []
    assert h.loop.proposals() == []


def test_an_open_proposal_is_not_proposed_twice(h: Harness) -> None:
    _propose_timeout_fix(h)
    assert h.loop.propose_from_findings(analyse(h.events, h.clock())) == []


def test_approve_merges_and_falling_error_rate_keeps_it_implemented(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    result = h.loop.approve(pid, reviewer="alice")
    p = result.proposal
    assert p.status == "implemented"
    assert h.loop.repo.head() == p.merge_commit
    assert "timeout_s: 60" in (h.main_file("agents.yaml") or "")
    # after the fix web_search rarely times out
    h.add(tool_events(h.clock(), 1, {"web_search": 0.01}, seed=8))
    h.clock.advance(minutes=30)
    assert [c.verdict for c in h.loop.tick()] == ["watching"]
    h.clock.advance(minutes=31)
    (check,) = h.loop.tick()
    assert check.verdict == "stable" and check.current < check.baseline
    final = h.loop.get(pid)
    assert final.status == "implemented"
    assert "stable after monitoring" in final.log[-1]
    kinds = [(e["kind"], e["payload"].get("to")) for e in h.governance.events()]
    assert kinds == [
        ("Genesis", None), ("PatchPending", None), ("ProposalStatusChanged", "pending"),
        ("ProposalStatusChanged", "approved"), ("PatchApproved", None), ("PatchApplied", None),
        ("ProposalStatusChanged", "implemented"), ("ProposalMonitored", None),
    ]
    # the kernel's state holds the merged proposal; the ledger verifies
    assert h.rt.value(f"improve/proposals/{pid}")["branch"] == final.branch
    assert h.rt.verify().events == len(h.governance.events())
    # every status change is a commit in the proposals repository
    history = h.loop.store.history(final)
    assert [line.split(": ")[1].split()[0] for line in history] == [
        "stable", "implemented", "approved", "pending"]


def test_error_spike_after_merge_reverts_and_halts(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    h.loop.approve(pid)
    merged = h.loop.repo.head()
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "run_python": 0.5}, seed=9))
    h.clock.advance(minutes=30)
    (check,) = h.loop.tick()
    assert check.verdict == "spike"
    p = h.loop.get(pid)
    assert p.status == "reverted" and "auto-reverted" in p.log[-1]
    head = h.loop.repo.head()
    assert head != merged and h.loop.repo.rev(f"{head}~1") == merged
    assert "timeout_s: 30" in (h.main_file("agents.yaml") or "")
    assert h.loop.breakers.state.halted
    assert any(m.severity == "critical" and "auto-reverted" in m.title for m in h.notifier.sent)
    assert h.governance.events("ProposalStatusChanged")[-1]["payload"]["to"] == "reverted"
    with pytest.raises(Paused, match="halted"):
        h.loop.propose_from_findings(analyse(h.events, h.clock()))
    h.loop.reset("alice")
    assert not h.loop.breakers.state.halted


def test_halted_loop_defers_the_merge_of_an_approval(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    h.loop.breakers.halt("manual stop")
    out = h.loop.approve(pid)
    assert out.proposal.status == "approved" and "merge deferred" in out.message
    head = h.loop.repo.head()
    with pytest.raises(Paused):
        h.loop.apply(pid)
    assert h.loop.repo.head() == head
    h.loop.reset()
    assert h.loop.apply(pid).proposal.status == "implemented"


def test_apply_of_a_pending_proposal_waits_for_approval(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    with pytest.raises(NotApproved):
        h.loop.apply(pid)


def test_reject_deletes_the_branch_and_needs_a_reason(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    with pytest.raises(ProposalError, match="reason"):
        h.loop.reject(pid, "  ")
    out = h.loop.reject(pid, "timeouts are upstream", reviewer="bob")
    assert out.proposal.status == "rejected"
    assert out.proposal.review is not None and out.proposal.review.notes == "timeouts are upstream"
    assert not h.loop.repo.branch_exists(out.proposal.branch)
    with pytest.raises(ProposalError, match="cannot become approved"):
        h.loop.approve(pid)


def test_three_consecutive_rejections_pause_analysis_for_48h(h: Harness) -> None:
    runbook = h.main_file("docs/runbook.md") or ""
    for i in range(3):
        out = h.loop.propose(h.draft({"docs/runbook.md": runbook + f"- note {i}\n"}, key=f"k{i}"))
        assert out is not None
        h.loop.reject(out.proposal.id, "noise")
    with pytest.raises(Paused, match="analysis paused until 2026-01-13T00:00:00Z"):
        h.loop.propose_from_findings(analyse(h.events, h.clock()))
    h.clock.advance(hours=48)
    # the pause is over: the (older) timeout findings are proposed again
    assert h.loop.propose_from_findings(analyse(h.events, h.clock() - timedelta(hours=48)))


def test_failed_merge_pauses_the_category_for_24h(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    # main moves under the proposal with a conflicting edit
    agents = h.loop.repo.path / "agents.yaml"
    agents.write_text(agents.read_text().replace("timeout_s: 30", "timeout_s: 12"))
    h.loop.repo.git("commit", "-qam", "manual hotfix")
    out = h.loop.approve(pid)
    # the kernel re-runs the test gate on approval: the conflict is caught before any merge
    assert out.proposal.status == "failed"
    assert "conflicts with main in agents.yaml" in out.proposal.log[-1]
    assert h.governance.events("PatchRejected")[-1]["payload"]["stage"] == "test"
    assert not h.loop.repo.branch_exists(out.proposal.branch)
    assert h.loop.repo.git("status", "--porcelain") == ""
    assert "timeout_s: 12" in agents.read_text()
    runbook = h.main_file("docs/runbook.md") or ""
    with pytest.raises(Paused, match="category bugfix paused"):
        h.loop.propose(h.draft({"docs/runbook.md": runbook + "- x\n"}))
    assert h.loop.propose(h.draft({"docs/runbook.md": runbook + "- x\n"}, category="enhancement"))
    h.clock.advance(hours=24)
    assert h.loop.propose(h.draft({"docs/runbook.md": runbook + "- y\n"}, key="other"))


def test_state_survives_a_new_loop_on_the_same_workspace(h: Harness, tmp_path: Path) -> None:
    pid = _propose_timeout_fix(h)
    h.loop.breakers.record_rejection(h.clock())
    again = Harness(tmp_path)
    assert again.loop.get(pid[:4]).status == "pending"
    assert again.loop.breakers.state.consecutive_rejections == 1
    assert again.loop.approve(pid).proposal.status == "implemented"


def test_kernel_approve_of_the_patch_merges_too(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    assert p.patch_hash in h.rt.pending()
    outcome = h.rt.approve(p.patch_hash[7:19])
    assert outcome.status == "applied"
    merged = h.loop.get(pid)
    assert merged.status == "implemented" and merged.review.reviewer == "ouro approve"  # type: ignore[union-attr]
    assert h.loop.repo.head() == merged.merge_commit


def test_diff_is_in_the_blob_store_and_the_value_pins_the_base(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    h.loop.approve(pid)
    value = h.rt.value(f"improve/proposals/{pid}")
    assert value["base"] == p.base_commit and value["branch"] == p.branch
    assert h.rt.blobs.get(value["diff"]).decode() == p.diff


def test_kernel_reject_of_the_patch_is_caught_up(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    h.rt.reject(p.patch_hash, "not this week")
    (synced,) = h.loop.sync()
    assert synced.status == "rejected" and "not this week" in synced.review.notes  # type: ignore[union-attr]
    assert not h.loop.repo.branch_exists(p.branch)


def test_kernel_approve_without_the_loop_merges_on_next_tick(h: Harness, tmp_path: Path) -> None:
    from ouroboros.kernel import Runtime

    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    bare = Runtime.open(tmp_path / "ws", clock=h.clock)
    file_type = h.rt.registry.get("file")
    assert file_type is not None
    bare.registry.register_type(replace(file_type, effect=None))  # the gates, but no merge
    bare.registry.register_test("improve.validation", h.rt.registry.tests["improve.validation"])
    assert bare.approve(p.patch_hash).status == "applied"
    assert h.loop.get(pid).status == "pending"
    h.loop.tick()
    merged = h.loop.get(pid)
    assert merged.status == "implemented" and h.loop.repo.head() == merged.merge_commit


def test_registered_runtime_approves_and_merges_through_the_kernel(h: Harness, tmp_path: Path) -> None:
    """What `ouro approve <patch>` does once the CLI calls the registrar: the loop is made
    lazily on the fresh runtime and the effect merges."""
    from ouroboros.capabilities.improve.registrar import register
    from ouroboros.kernel import Runtime

    pid = _propose_timeout_fix(h)
    p = h.loop.get(pid)
    fresh = Runtime.open(tmp_path / "ws", clock=h.clock)
    register(fresh)
    assert fresh.approve(p.patch_hash).status == "applied"
    merged = h.loop.get(pid)
    assert merged.status == "implemented" and h.loop.repo.head() == merged.merge_commit
    fresh.close()


def test_registering_creates_nothing_on_disk(tmp_path: Path) -> None:
    from ouroboros.capabilities.improve.registrar import register
    from ouroboros.kernel import Runtime

    with Runtime.init(tmp_path / "ws") as rt:
        register(rt)
        assert rt.registry.get("file") is not None
    assert not (tmp_path / "ws" / "improve").exists()


def test_kernel_rollback_reverts_the_merge_without_tripping_breakers(h: Harness) -> None:
    pid = _propose_timeout_fix(h)
    merged = h.loop.approve(pid).proposal
    (outcome,) = h.rt.rollback(patch=merged.patch_hash)
    assert outcome.status == "applied"
    h.loop.sync()  # a no-op when the kernel ran the rollback's effect itself
    p = h.loop.get(pid)
    assert p.status == "reverted" and "kernel rollback" in p.log[-1]
    assert h.loop.repo.rev(f"{h.loop.repo.head()}~1") == merged.merge_commit
    assert "timeout_s: 30" in (h.main_file("agents.yaml") or "")
    assert h.rt.value(f"improve/proposals/{pid}") is None
    assert not h.loop.breakers.state.halted and h.loop.monitor.windows == {}


def test_ids_never_collide(tmp_path: Path) -> None:
    ids = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    h = Harness(tmp_path, new_id=lambda: next(ids))
    runbook = h.main_file("docs/runbook.md") or ""
    first = h.loop.propose(h.draft({"docs/runbook.md": runbook + "- a\n"}, key="a"))
    second = h.loop.propose(h.draft({"docs/runbook.md": runbook + "- b\n"}, key="b"))
    assert first is not None and second is not None
    assert (first.proposal.id, second.proposal.id) == ("aaaaaaaa", "bbbbbbbb")
