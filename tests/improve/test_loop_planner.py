"""The planner: each kind of finding becomes the right small config diff, or nothing."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.diffs import parse_diff
from ouroboros.capabilities.improve.proposals.planner import CLARIFY, plan
from ouroboros.capabilities.improve.proposals.policy import check_policy
from ouroboros.capabilities.improve.proposals.repo import example_deployment
from ouroboros.capabilities.improve.proposals.yamledit import set_scalar

EXAMPLE = example_deployment()
FILES = {p: (EXAMPLE / p).read_text() for p in ("agents.yaml", "scheduled_tasks.yaml")}


def _f(kind: str, tool: str | None = None, agent: str | None = None, summary: str = "s",
       evidence: tuple[str, ...] = (), severity: str = "medium", **metrics: float) -> Finding:
    return Finding(kind, severity, tool, agent, summary, evidence, 5, dict(metrics))


def _new(files: dict[str, str], finding_list: list[Finding]) -> dict[str, Any]:
    """The single draft for ``finding_list`` and its file's parsed YAML once git applies it."""
    (draft,) = plan(finding_list, files.get)
    path = draft.affected_files[0]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, path).write_text(files[path])
        proc = subprocess.run(["git", "apply", "-"], cwd=tmp, input=draft.diff.encode(),
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return {"draft": draft, "doc": yaml.safe_load(Path(tmp, path).read_text())}


def test_timeouts_raise_timeout_and_retries() -> None:
    got = _new(FILES, [_f("timeout_cluster", "web_search", severity="high")])
    tool = got["doc"]["tools"]["web_search"]
    assert tool == {"timeout_s": 60, "max_retries": 2}
    assert got["draft"].category == "bugfix" and got["draft"].severity == "high"


def test_other_failures_add_retries_with_backoff() -> None:
    finding = _f("error_pattern", "db_query", evidence=("error pattern: HTTP_502 Bad gateway",))
    got = _new(FILES, [finding])
    assert got["doc"]["tools"]["db_query"] == {"timeout_s": 10, "max_retries": 2,
                                                "retry_backoff_s": 2}


def test_latency_regression_fits_the_timeout_to_p95() -> None:
    got = _new(FILES, [_f("latency_anomaly", "db_query", p95_ms=12000.0)])
    assert got["doc"]["tools"]["db_query"]["timeout_s"] == 19
    assert got["draft"].category == "optimization"


def test_latency_within_the_timeout_gives_nothing() -> None:
    assert plan([_f("latency_anomaly", "run_python", p95_ms=2000.0)], FILES.get) == []


def test_corrections_add_persona_guidance_only() -> None:
    got = _new(FILES, [_f("user_corrections", agent="ResearchAgent")])
    agent = got["doc"]["agents"]["ResearchAgent"]
    assert CLARIFY in agent["persona"] and agent["extensions"] == ["web_search", "fetch_page"]
    assert got["draft"].category == "enhancement"


def test_task_failures_add_retries_not_schedules() -> None:
    got = _new(FILES, [_f("task_failure_trend", summary="Scheduled task rag-refresh failed 9 times, up")])
    task = got["doc"]["tasks"]["rag-refresh"]
    assert task["retries"] == 2 and task["schedule"] == "0 3 * * *"


@pytest.mark.parametrize("finding", [
    _f("timeout_cluster", "unknown_tool"),
    _f("user_corrections", agent="NoSuchAgent"),
    _f("task_failure_trend", summary="Scheduled task nope failed 3 times, up"),
    _f("escalation_like", "web_search"),
])
def test_unknown_subjects_get_nothing(finding: Finding) -> None:
    assert plan([finding], FILES.get) == []


def test_a_fix_already_at_its_bound_gives_nothing() -> None:
    maxed = set_scalar(set_scalar(FILES["agents.yaml"], ("tools", "web_search", "timeout_s"), 300),
                       ("tools", "web_search", "max_retries"), 5)
    assert plan([_f("timeout_cluster", "web_search")], {"agents.yaml": maxed}.get) == []


def test_findings_of_one_fix_make_one_draft_with_the_worst_severity() -> None:
    drafts = plan([_f("timeout_cluster", "web_search", severity="medium"),
                   _f("tool_reliability", "web_search", severity="high"),
                   _f("error_pattern", "web_search", severity="low",
                      evidence=("error pattern: TIMEOUT Request timed out",))], FILES.get)
    (draft,) = drafts
    assert draft.key == "tool-timeout:web_search" and draft.severity == "high"
    assert len(draft.findings) == 3


def test_planner_drafts_pass_the_policy_tests() -> None:
    findings = [_f("timeout_cluster", "web_search"), _f("user_corrections", agent="OpsAgent"),
                _f("latency_anomaly", "db_query", p95_ms=30000.0)]
    for draft in plan(findings, FILES.get):
        changes = parse_diff(draft.diff)
        path = draft.affected_files[0]
        new = _new(FILES, [f for f in findings if draft.key.endswith(f.tool or f.agent or "")])
        text = yaml.safe_dump(new["doc"])
        assert check_policy(changes, lambda p, path=path: FILES[path], lambda p, t=text: t) == []
