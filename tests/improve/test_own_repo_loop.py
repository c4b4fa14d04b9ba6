"""The whole loop on a user's own repository: a fresh git repo made here (not the example),
a bare remote on disk, a fake forge on loopback and the local OpenAI-compatible server as
the WriterAgent."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from llm.hostile import HostileLLM
from ouroboros.capabilities.improve.proposals.proposal import UnreadableState

from .fakeforge import git
from .ownrepo import (
    ENV_SECRET,
    FIXED,
    SERVICE,
    TEST_MARKER,
    World,
    answer,
    good_diff,
    make_world,
    timeout_finding,
)


def writer_attempts(w: World) -> list[dict[str, object]]:
    return [e.payload for e in w.rt.log("WriterAttempt")]


def test_finding_to_pr_to_human_merge_to_deploy_to_auto_revert(world: World,
                                                                hostile: HostileLLM) -> None:
    w = world
    forbidden = answer("diff --git a/tests/test_service.py b/tests/test_service.py\n"
                       "--- a/tests/test_service.py\n+++ b/tests/test_service.py\n"
                       "@@ -1,2 +1,2 @@\n def test_fast():\n-    " + TEST_MARKER + "\n+    pass\n")
    hostile.replies = [forbidden, answer(good_diff())]
    before = w.remote_main()

    report = w.loop.propose_report([timeout_finding()])

    # the WriterAgent's first diff was refused by the gates and repaired on the second try
    (outcome,) = report.outcomes
    p = outcome.proposal
    assert p.status == "pending" and not report.skipped
    attempts = writer_attempts(w)
    assert [a["ok"] for a in attempts] == [False, True]
    assert "tests/test_service.py" in str(attempts[0]["reasons"])
    assert all(a["diff"] for a in attempts)  # every attempt's diff is in the blob store
    feedback = hostile.user_messages(1)[-1]
    assert "refused" in feedback and "tests/test_service.py" in feedback
    # what the model saw: the finding and allowed files, never .env nor the tests' content
    sent = hostile.all_text()
    assert "search timed out 40 times" in sent and "timeout_s: 10" in sent
    assert ENV_SECRET not in sent
    assert TEST_MARKER not in json.dumps(hostile.requests[0]["body"])  # only the model's echo
    # the branch is on the remote and a pull request is open against main
    assert p.branch in w.remote_branches()
    assert w.remote_main() == before
    (pull,) = w.forge.pulls.values()
    assert pull["head"]["ref"] == p.branch and pull["base"]["ref"] == "main"
    assert any("pull request #1 opened" in line for line in w.loop.get(p.id).log)

    # a human merges the pull request on the forge; the loop notices at its next tick
    w.calls(minutes=60, n=100, failed=2, start_after=timedelta(minutes=-60))
    merge = w.forge.merge(1)
    w.loop.tick()
    merged = w.loop.get(p.id)
    assert merged.status == "implemented" and merged.merge_commit == merge
    assert merged.review is not None and merged.review.reviewer == "forge:alice"
    assert w.loop.repo.head() == merge and w.loop.repo.read("main", "config/service.yaml") == FIXED
    assert w.marker.read_text().split() == [merge]  # the deploy command ran once, after merge
    assert w.rt.value(f"improve/proposals/{p.id}") is not None  # the kernel applied it
    assert p.id in w.loop.monitor.windows

    # errors spike after the deploy: the loop reverts and pushes the revert
    w.calls(minutes=10, n=40, failed=20, start_after=timedelta(seconds=1))
    w.clock.advance(minutes=15)
    w.loop.tick()
    reverted = w.loop.get(p.id)
    assert reverted.status == "reverted"
    assert w.remote_file("config/service.yaml") == SERVICE
    assert git(w.remote, "rev-parse", "main~1").strip() == merge
    assert w.loop.status()["halted"]
    assert any("auto-reverted" in m.title for m in w.notes.sent)


def test_approve_here_merges_pushes_and_deploys(world: World, hostile: HostileLLM) -> None:
    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    done = w.loop.approve(outcome.proposal.id, reviewer="bob")
    assert done.proposal.status == "implemented"
    assert w.remote_main() == done.proposal.merge_commit == w.loop.repo.head()
    assert w.remote_file("config/service.yaml") == FIXED
    assert w.marker.read_text().split() == [done.proposal.merge_commit]


def test_a_squash_merge_on_the_forge_is_recognised(world: World, hostile: HostileLLM) -> None:
    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    sha = w.forge.merge(1, squash=True)
    w.loop.tick()
    p = w.loop.get(outcome.proposal.id)
    assert p.status == "implemented" and p.merge_commit == sha


def test_a_forge_that_lies_about_a_merge_changes_nothing(world: World,
                                                         hostile: HostileLLM) -> None:
    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    pid, head = outcome.proposal.id, w.remote_main()
    applied = len(w.rt.log("PatchApplied"))
    for fake in ("f" * 40, head):  # a sha the remote lacks; then main's head, without the change
        w.forge.lie(1, fake)
        w.loop.tick()
        p = w.loop.get(pid)
        assert p.status == "pending"
        assert "reported merged" in p.log[-1]
    assert w.remote_main() == head and w.loop.repo.head() == head
    assert len(w.rt.log("PatchApplied")) == applied
    assert not w.marker.exists()
    alerts = [m for m in w.notes.sent if "merge not found" in m.title]
    assert len(alerts) == 2
    w.loop.tick()  # the same false claim is reported once, not at every tick
    assert len([m for m in w.notes.sent if "merge not found" in m.title]) == 2


def test_a_pull_request_closed_unmerged_rejects_the_proposal(world: World,
                                                             hostile: HostileLLM) -> None:
    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    w.forge.close_unmerged(1)
    w.loop.tick()
    p = w.loop.get(outcome.proposal.id)
    assert p.status == "rejected" and "closed without merging" in (p.review.notes if p.review
                                                                     else "")
    assert p.branch not in w.remote_branches()
    assert w.forge.comments and w.forge.comments[0][0] == 1


def test_a_remote_that_rejects_pushes(world: World, hostile: HostileLLM) -> None:
    from .ownrepo import hooked_remote

    w = world
    hooked_remote(w.remote, "refs/heads/*")
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    p = w.loop.get(outcome.proposal.id)
    # the proposal stands locally, says why, and no pull request points at a missing branch
    assert p.status == "pending" and "refused by the remote" in p.log[-1]
    assert w.forge.pulls == {} and p.branch not in w.remote_branches()
    before = w.loop.repo.head()
    done = w.loop.approve(p.id)
    # the merge the remote refused is undone locally: main stays what the remote has
    assert done.proposal.status == "failed" and "refused the merge" in done.proposal.log[-1]
    assert w.loop.repo.head() == before == w.remote_main()
    assert not w.marker.exists()


def test_a_revert_the_remote_refuses_is_reported_not_hidden(world: World,
                                                            hostile: HostileLLM) -> None:
    from .ownrepo import hooked_remote

    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    w.calls(minutes=60, n=100, failed=1, start_after=timedelta(minutes=-60))
    done = w.loop.approve(outcome.proposal.id)
    assert done.proposal.status == "implemented"
    hooked_remote(w.remote, "refs/heads/main")
    w.calls(minutes=10, n=40, failed=30, start_after=timedelta(seconds=1))
    w.clock.advance(minutes=15)
    w.loop.tick()
    p = w.loop.get(outcome.proposal.id)
    assert p.status == "reverted" and "REVERT NOT PUSHED" in p.log[-1]
    assert w.remote_file("config/service.yaml") == FIXED  # the remote still has the merge
    assert w.loop.repo.read("main", "config/service.yaml") == SERVICE


def test_a_failing_deploy_reverts_before_any_monitoring(tmp_path: Path,
                                                         hostile: HostileLLM) -> None:
    gen = make_world(tmp_path, hostile.base_url)
    w = next(gen)
    try:
        w.loop.settings = w.loop.settings.model_copy(update={
            "deploy": w.loop.settings.deploy.model_copy(update={
                "command": ("sh", "-c", "echo boom >&2; exit 3")})})
        hostile.replies = [answer(good_diff())]
        (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
        w.loop.approve(outcome.proposal.id)
        p = w.loop.get(outcome.proposal.id)
        assert p.status == "reverted"
        assert any("DEPLOY FAILED: deploy exited 3: boom" in line for line in p.log)
        assert w.remote_file("config/service.yaml") == SERVICE
        assert p.id not in w.loop.monitor.windows
    finally:
        gen.close()


def test_an_edited_branch_field_is_refused_not_acted_on(world: World,
                                                        hostile: HostileLLM) -> None:
    """The markdown's Branch field named what the loop deleted and watched: edited to
    `release`, a rejection deleted the remote's release branch; edited to `main`, the next
    tick (no forge) saw "the branch" on the remote's main and approved the proposal in the
    kernel, marked it implemented and monitored it, with nothing merged."""
    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    pid, head = outcome.proposal.id, w.remote_main()
    git(w.remote, "branch", "release", "main")
    w.loop.publisher.forge = None  # a remote without a forge: merges are noticed on main
    (md,) = w.loop.store.root.glob(f"*/*/{pid}-*.md")
    original = md.read_text()
    applied = len(w.rt.log("PatchApplied"))
    for branch in ("release", "main", "--all"):
        md.write_text(original.replace(f"**Branch**: {outcome.proposal.branch}",
                                       f"**Branch**: {branch}"))
        with pytest.raises(UnreadableState, match="Branch"):
            w.loop.reject(pid, "no")
        with pytest.raises(UnreadableState, match="Branch"):
            w.loop.tick()
    assert w.remote_branches() == sorted(["main", "release", outcome.proposal.branch])
    assert w.remote_main() == head and w.loop.repo.head() == head
    assert len(w.rt.log("PatchApplied")) == applied
    assert w.loop.monitor.windows == {}
    md.write_text(original)
    assert w.loop.get(pid).status == "pending"


def test_a_push_refused_after_the_kernel_approved_leaves_the_kernel_agreeing(
        world: World, hostile: HostileLLM) -> None:
    # the remote (a bare repository whose pre-receive hook refuses main) refuses the merge
    # after the kernel approved the patch: the kernel must not keep saying "applied"
    from .ownrepo import hooked_remote

    w = world
    hostile.replies = [answer(good_diff())]
    (outcome,) = w.loop.propose_report([timeout_finding()]).outcomes
    hooked_remote(w.remote, "refs/heads/main")
    before = w.remote_main()
    done = w.loop.approve(outcome.proposal.id)
    p = done.proposal
    assert p.status == "failed" and "refused the merge" in p.log[-1]
    assert w.loop.repo.head() == before == w.remote_main()
    # the kernel's record of what is merged agrees: the patch is rolled back
    assert w.rt.value(f"improve/proposals/{p.id}") is None
    undone = [e.payload for e in w.rt.log("PatchApplied")
              if e.payload.get("rollback_of") == p.patch_hash]
    assert len(undone) == 1
    # a later sync changes nothing and a kernel rollback cannot be repeated
    assert w.loop.sync() == []
    assert w.loop.get(p.id).status == "failed"
