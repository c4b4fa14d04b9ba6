"""The target repository: all-or-nothing branches, merges and reverts on real git."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> TargetRepo:
    return TargetRepo.init(tmp_path_factory.mktemp("target") / "repo")


def _good_diff(repo: TargetRepo) -> str:
    agents = repo.read("main", "agents.yaml") or ""
    runbook = repo.read("main", "docs/runbook.md") or ""
    return (make_diff("agents.yaml", agents, agents.replace("timeout_s: 30", "timeout_s: 45"))
            + make_diff("docs/runbook.md", runbook, runbook + "- more\n"))


_mutation = st.tuples(st.integers(0, 10_000), st.sampled_from(["drop", "dup", "edit", "swap"]),
                      st.text("abc +-@\\ 0123456789", max_size=12))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_a_mangled_diff_makes_a_whole_branch_or_nothing(repo: TargetRepo,
                                                        mutations: list[tuple[int, str, str]]) -> None:
    lines = _good_diff(repo).splitlines(keepends=True)
    for at, how, text in mutations:
        i = at % len(lines)
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "edit":
            lines[i] = text + "\n"
        else:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            lines = ["\n"]
    patch = "".join(lines)
    before = repo.git("for-each-ref")
    status = repo.git("status", "--porcelain")
    base = repo.head()
    try:
        made = repo.apply_to_branch("ouro/proposal-fuzz", base, patch, "fuzz")
    except GitError as e:
        assert e.reason  # git said why
        assert repo.git("for-each-ref") == before
    else:
        assert repo.git("rev-list", "--parents", "-n1", made.commit).split()[1:] == [base]
        assert repo.rev(f"{made.commit}^{{tree}}") == repo.tree_of_patch(base, patch)
        repo.delete_branch(made.branch)
    assert repo.head() == base
    assert repo.git("status", "--porcelain") == status


def test_existing_branch_is_never_overwritten(repo: TargetRepo) -> None:
    made = repo.apply_to_branch("ouro/proposal-x1", repo.head(), _good_diff(repo), "one")
    with pytest.raises(GitError, match="already exists"):
        repo.apply_to_branch("ouro/proposal-x1", repo.head(), _good_diff(repo), "two")
    assert repo.rev("ouro/proposal-x1") == made.commit
    assert repo.branch_matches("ouro/proposal-x1", made.base, _good_diff(repo)) is None
    other = _good_diff(repo).replace("timeout_s: 45", "timeout_s: 46")
    assert "does not hold exactly" in (repo.branch_matches("ouro/proposal-x1", made.base, other) or "")
    repo.delete_branch("ouro/proposal-x1")


def test_merge_and_revert_move_main_by_new_commits(tmp_path: Path) -> None:
    repo = TargetRepo.init(tmp_path / "r")
    base = repo.head()
    made = repo.apply_to_branch("ouro/proposal-m1", base, _good_diff(repo), "change")
    assert repo.merge_conflicts(made.branch) is None
    merge = repo.merge(made.branch, "merge it")
    assert "timeout_s: 45" in (repo.path / "agents.yaml").read_text()
    revert = repo.revert(merge, "revert it")
    assert repo.rev(f"{revert}~1") == merge and repo.rev(f"{merge}~1") == base
    assert (repo.path / "agents.yaml").read_text() == repo.read(base, "agents.yaml")


def test_merge_refuses_a_dirty_main(tmp_path: Path) -> None:
    repo = TargetRepo.init(tmp_path / "r")
    made = repo.apply_to_branch("ouro/proposal-d1", repo.head(), _good_diff(repo), "change")
    (repo.path / "agents.yaml").write_text("edited by hand\n")
    head = repo.head()
    with pytest.raises(GitError, match="uncommitted changes"):
        repo.merge(made.branch, "merge")
    assert repo.head() == head
