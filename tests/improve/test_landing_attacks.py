"""Adversarial tests of the last mile: monitoring windows that go silent, auto-reverts
whose git step fails, pushes refused after the kernel approved. Real git throughout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.capabilities.improve.proposals.loop import Paused

from .loopkit import T0, Harness, tool_events


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    return h


def _merged(h: Harness) -> str:
    (outcome,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    pid = outcome.proposal.id
    assert h.loop.approve(pid).proposal.status == "implemented"
    return pid


def test_an_outage_after_a_merge_is_never_judged_stable(h: Harness) -> None:
    # the baseline hour had 40 calls of the changed tool (120 in all); after the merge the
    # tools go silent (an outage)
    pid = _merged(h)
    h.clock.advance(minutes=61)
    (check,) = h.loop.tick()
    assert check.verdict == "watching" and check.calls == 0  # a bounded extension
    p = h.loop.get(pid)
    assert not any("stable" in line for line in p.log)
    assert "no tool calls" in p.log[-1]
    assert not h.loop.breakers.state.halted
    h.clock.advance(minutes=61)  # still silent after the extension: surfaced
    (check,) = h.loop.tick()
    assert check.verdict == "silent"
    assert check.describe().startswith("0 tool calls since the merge against 40")
    p = h.loop.get(pid)
    assert p.status == "implemented" and not any("stable" in line for line in p.log)
    assert "SILENT" in p.log[-1]
    assert h.loop.breakers.state.halted and "silent" in h.loop.breakers.state.halt_reason
    assert any(m.severity == "critical" and "silent" in m.title for m in h.notifier.sent)
    assert h.governance.events("ProposalMonitored")[-1]["payload"]["verdict"] == "silent"
    assert h.loop.monitor.windows == {}
    with pytest.raises(Paused, match="silent"):
        h.loop.propose_from_findings(analyse(h.events, h.clock()))


def test_late_telemetry_in_the_extension_ends_the_window_normally(h: Harness) -> None:
    pid = _merged(h)
    merged_at = h.clock()
    h.clock.advance(minutes=61)
    assert [c.verdict for c in h.loop.tick()] == ["watching"]
    # the telemetry arrives late: the window's hour had its usual traffic, healthy
    h.add(tool_events(merged_at, 1, {"web_search": 0.01}, seed=8))
    h.clock.advance(minutes=5)
    (check,) = h.loop.tick()
    assert check.verdict == "stable" and check.calls > 0
    assert not h.loop.breakers.state.halted and h.loop.get(pid).status == "implemented"


def test_a_trickle_far_below_the_baseline_is_silent_not_stable(h: Harness) -> None:
    pid = _merged(h)
    h.add(tool_events(h.clock(), 1, {}, seed=8, per_hour=3))  # 3 calls against 120
    h.clock.advance(minutes=61)
    (check,) = h.loop.tick()
    assert check.verdict == "watching"
    h.clock.advance(minutes=61)
    (check,) = h.loop.tick()
    assert check.verdict == "silent" and h.loop.get(pid).status == "implemented"


def test_no_baseline_traffic_and_no_window_traffic_stays_stable(tmp_path: Path) -> None:
    # nothing before, nothing after: no outage to see (the old behaviour, kept)
    h = Harness(tmp_path)
    h.add(tool_events(T0, 22, {"web_search": 0.3}))  # ends two hours before the merge
    pid = _merged(h)
    h.clock.advance(minutes=61)
    (check,) = h.loop.tick()
    assert check.verdict == "stable" and h.loop.get(pid).status == "implemented"


def test_an_auto_revert_whose_git_step_fails_is_a_failed_revert(h: Harness) -> None:
    pid = _merged(h)
    merge_commit = h.loop.get(pid).merge_commit
    patch = h.loop.get(pid).patch_hash
    # someone edits the merged lines on main by hand: the revert now conflicts
    repo = h.loop.repo.path
    text = (repo / "agents.yaml").read_text().replace("timeout_s: 60", "timeout_s: 90")
    (repo / "agents.yaml").write_text(text)
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "hand edit"], check=True,
                   env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
                        "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x",
                        "HOME": str(repo), "PATH": "/usr/bin:/bin"})
    head = h.loop.repo.head()
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "run_python": 0.5}, seed=9))
    h.clock.advance(minutes=30)
    (check,) = h.loop.tick()
    assert check.verdict == "spike"
    p = h.loop.get(pid)
    assert p.status == "revert_failed", p.status
    assert "AUTO-REVERT FAILED" in p.log[-1]
    assert h.loop.repo.head() == head  # nothing half-done on main
    # the kernel still records the patch as applied: main still has the change
    assert h.rt.value(f"improve/proposals/{pid}") is not None
    assert h.governance.is_applied(patch)
    assert h.loop.breakers.state.halted and "revert failed" in h.loop.breakers.state.halt_reason
    assert any(m.severity == "critical" and "revert FAILED" in m.title for m in h.notifier.sent)
    assert h.governance.events("ProposalStatusChanged")[-1]["payload"]["to"] == "revert_failed"
    assert [x.id for x in h.loop.proposals("revert_failed")] == [pid]
    with pytest.raises(Paused, match="revert failed"):
        h.loop.propose_from_findings(analyse(h.events, h.clock()))
    # a human reverts by hand through the kernel: the proposal follows
    assert merge_commit
    (repo / "agents.yaml").write_text(text.replace("timeout_s: 90", "timeout_s: 60"))
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "undo hand edit"], check=True,
                   env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
                        "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x",
                        "HOME": str(repo), "PATH": "/usr/bin:/bin"})
    h.rt.rollback(patch=patch)
    assert h.loop.get(pid).status == "reverted"


def test_a_failed_revert_shows_in_the_cli_list_and_status(h: Harness, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ouroboros.interfaces.cli.proposals import app

    pid = _merged(h)
    repo = h.loop.repo.path
    (repo / "agents.yaml").write_text(
        (repo / "agents.yaml").read_text().replace("timeout_s: 60", "timeout_s: 90"))
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "hand edit"], check=True,
                   env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
                        "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x",
                        "HOME": str(repo), "PATH": "/usr/bin:/bin"})
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "run_python": 0.5}, seed=9))
    h.clock.advance(minutes=30)
    h.loop.tick()
    h.rt.close()
    runner = CliRunner()
    home = str(tmp_path / "ws")
    listed = runner.invoke(app, ["list", "--status", "revert_failed", "--json", "--home", home])
    assert listed.exit_code == 0, listed.output
    assert [p["id"] for p in json.loads(listed.stdout)] == [pid]
    status = runner.invoke(app, ["status", "--home", home])
    assert status.exit_code == 0 and "automatic revert failed" in status.output


def test_a_kernel_rollback_of_a_merge_a_later_one_built_on_is_surfaced(h: Harness) -> None:
    # A raises the timeout, B (merged after) edits the same line: `ouro rollback --patch A`
    # is accepted by the kernel (A's target is A's own), but git cannot revert A's merge
    first = _merged(h)
    text = h.main_file("agents.yaml") or ""
    draft = h.draft({"agents.yaml": text.replace("timeout_s: 60", "timeout_s: 90")},
                    key="later", title="Later change")
    later = h.loop.propose(draft)
    assert later is not None and h.loop.approve(later.proposal.id).proposal.status == \
        "implemented"
    head = h.loop.repo.head()
    h.rt.rollback(patch=h.loop.get(first).patch_hash)
    p = h.loop.get(first)
    assert p.status == "revert_failed" and "REVERT FAILED" in p.log[-1], p.log[-1]
    assert h.loop.repo.head() == head and "timeout_s: 90" in (h.main_file("agents.yaml") or "")
    assert h.loop.breakers.state.halted
    assert any(m.severity == "critical" and "revert FAILED" in m.title for m in h.notifier.sent)
    assert h.rt.log("EffectFailed") == []
    # the next ticks neither crash nor log it again
    logged = len(h.loop.get(first).log)
    h.clock.advance(minutes=5)
    h.loop.tick()
    h.loop.tick()
    assert len(h.loop.get(first).log) == logged
    # a second rollback of the same patch is refused, nothing appended
    from ouroboros.kernel.errors import NotFound

    events = len(h.rt.log())
    with pytest.raises(NotFound):
        h.rt.rollback(patch=h.loop.get(first).patch_hash)
    assert len(h.rt.log()) == events


def test_two_ticking_processes_revert_once_and_neither_crashes(h: Harness) -> None:
    # `ouro improve run`'s scheduler and a cron `ouro proposals tick` on one workspace:
    # each process loaded monitor.json when it started
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop

    pid = _merged(h)
    other = ImproveLoop(h.rt, events=lambda since, until: h.events, notifier=h.notifier)
    h.add(tool_events(h.clock(), 0.5, {"web_search": 0.9, "run_python": 0.5}, seed=9))
    h.clock.advance(minutes=30)
    assert [c.verdict for c in h.loop.tick()] == ["spike"]
    head = h.loop.repo.head()
    assert other.tick() == []  # the window is closed: nothing judged twice
    p = other.get(pid)
    assert p.status == "reverted" and "auto-reverted" in p.log[-1]
    assert h.loop.repo.head() == head
    assert len([m for m in h.notifier.sent if "auto-reverted" in m.title]) == 1


def test_a_stale_process_opening_a_window_keeps_the_closed_ones_closed(h: Harness) -> None:
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop

    first = _merged(h)
    other = ImproveLoop(h.rt, events=lambda since, until: h.events, notifier=h.notifier)
    h.add(tool_events(h.clock(), 1, {"web_search": 0.01}, seed=8))
    h.clock.advance(minutes=61)
    assert [c.verdict for c in h.loop.tick()] == ["stable"]
    runbook = other.repo.read("main", "docs/runbook.md") or ""
    out = other.propose(h.draft({"docs/runbook.md": runbook + "- more.\n"}, key="second"))
    assert out is not None
    second = other.approve(out.proposal.id).proposal
    assert second.status == "implemented"
    assert sorted(h.loop.status()["monitoring"]) == [second.id]
    assert first not in other.status()["monitoring"]


def test_a_halt_from_another_process_is_neither_missed_nor_erased(h: Harness) -> None:
    # the tick process halts after an auto-revert; a process started before it (the
    # console, `ouro proposals approve`) must see the halt, and its own saves keep it
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop

    (outcome,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    other = ImproveLoop(h.rt, events=lambda since, until: h.events, notifier=h.notifier)
    h.loop.breakers.halt("proposal x auto-reverted")
    out = other.approve(outcome.proposal.id)  # records the approval: a save of the breakers
    assert out.proposal.status == "approved" and "merge deferred" in out.message
    assert h.loop.repo.head() == outcome.proposal.base_commit
    fresh = ImproveLoop(h.rt, events=lambda since, until: h.events, notifier=h.notifier)
    assert fresh.breakers.state.halted and fresh.status()["halted"]
    with pytest.raises(Paused, match="halted"):
        other.apply(outcome.proposal.id)
