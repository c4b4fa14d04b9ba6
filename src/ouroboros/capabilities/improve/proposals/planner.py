"""Findings -> proposal drafts with a concrete unified diff against the target repository.

Stability first and config only: the planner tunes tool timeouts and retries, task
retries, and adds guidance to a persona. It never grants anything, so its drafts pass
the policy tests by construction (the gates still check). Findings about the same
fix are merged into one draft; a fix that is already in place, or a subject the
configuration does not know, produces nothing: healthy tools get no proposals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ouroboros.capabilities.improve.analysis import TIMEOUT_CODES, Finding
from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.yamledit import (
    EditError,
    append_to_block,
    get,
    set_scalar,
)
from ouroboros.capabilities.llm.untrusted import escape_markdown

AGENTS = "agents.yaml"
TASKS = "scheduled_tasks.yaml"
MAX_TIMEOUT_S = 300
MAX_RETRIES = 5
CLARIFY = "When a request is ambiguous, ask one clarifying question and state your assumptions."
_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class Draft:
    """A proposal before it has an id: what the planner hands to the loop."""

    key: str  # the fix, e.g. "tool-timeout:web_search"; one open proposal per key
    title: str
    category: str
    severity: str
    problem: str
    evidence: tuple[str, ...]
    root_cause: str
    solution: str
    diff: str
    affected_files: tuple[str, ...]
    risk: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    #: a change to the kernel's state instead of the repository (``proposals.state``)
    state: Any = None


def is_timeout(f: Finding) -> bool:
    if f.kind == "timeout_cluster":
        return True
    return f.kind == "error_pattern" and any(
        line.startswith("error pattern: ") and line.split()[2] in TIMEOUT_CODES
        for line in f.evidence
    )


def _severity(findings: Sequence[Finding]) -> str:
    return min((f.severity for f in findings), key=lambda s: _RANK.get(s, 9))


def _evidence(findings: Sequence[Finding]) -> tuple[str, ...]:
    """The findings' lines, markdown-escaped: they carry telemetry's error messages, text any
    telemetry token holder wrote (a link, an image, HTML would render in the proposal)."""
    lines = [f"{f.kind}: {f.summary}" for f in findings]
    for f in findings:
        lines.extend(f.evidence)
    return tuple(escape_markdown(line) for line in dict.fromkeys(lines))


def _problem(findings: Sequence[Finding]) -> str:
    """The findings' summaries, markdown-escaped (see `_evidence`)."""
    return escape_markdown("; ".join(f.summary for f in findings))


def _tool_draft(tool: str, findings: list[Finding], agents_yaml: str) -> Draft | None:
    settings = get(agents_yaml, ("tools", tool))
    if not isinstance(settings, dict):
        return None  # a tool the deployment does not configure: nothing to tune
    timeout = float(settings.get("timeout_s") or 0)
    retries = int(settings.get("max_retries") or 0)
    timeouts = [f for f in findings if is_timeout(f)]
    latency = [f for f in findings if f.kind == "latency_anomaly"]
    failures = [f for f in findings if f.kind in ("error_pattern", "tool_reliability")]
    text = agents_yaml
    try:
        if timeouts:
            new_timeout = min(MAX_TIMEOUT_S, max(int(timeout * 2), 1))
            new_retries = min(MAX_RETRIES, max(retries, 2))
            if new_timeout == timeout and new_retries == retries:
                return None
            text = set_scalar(text, ("tools", tool, "timeout_s"), new_timeout)
            text = set_scalar(text, ("tools", tool, "max_retries"), new_retries)
            key, category = f"tool-timeout:{tool}", "bugfix"
            used = timeouts + [f for f in failures if f not in timeouts]
            title = f"Raise {tool} timeout and add retries"
            root = (f"{tool} calls are cut off by the {timeout:g} s timeout with "
                    f"{retries} retries, so transient slowness becomes a failure.")
            solution = (f"Raise `tools.{tool}.timeout_s` from {timeout:g} to {new_timeout} and "
                        f"`max_retries` from {retries} to {new_retries} in `{AGENTS}`.")
            risk = (f"Slow {tool} calls hold an agent up to {new_timeout * (new_retries + 1)} s "
                    "before failing; error rate is monitored for 1 h after merge.")
        elif latency:
            p95_s = max(f.metrics.get("p95_ms", 0.0) for f in latency) / 1000.0
            new_timeout = min(MAX_TIMEOUT_S, int(p95_s * 1.5) + 1)
            if new_timeout <= timeout:
                return None
            text = set_scalar(text, ("tools", tool, "timeout_s"), new_timeout)
            key, category, used = f"tool-latency:{tool}", "optimization", latency
            title = f"Fit {tool} timeout to its p95 latency"
            root = (f"{tool}'s p95 latency ({p95_s:.1f} s) approaches its {timeout:g} s "
                    "timeout, so the slowest calls will start failing.")
            solution = f"Raise `tools.{tool}.timeout_s` from {timeout:g} to {new_timeout} s (1.5 x p95)."
            risk = "Slow calls take longer to fail; no effect on fast calls."
        elif failures:
            new_retries = min(MAX_RETRIES, max(retries + 1, 2))
            backoff = settings.get("retry_backoff_s")
            if new_retries == retries and backoff:
                return None
            text = set_scalar(text, ("tools", tool, "max_retries"), new_retries)
            if not backoff:
                text = set_scalar(text, ("tools", tool, "retry_backoff_s"), 2)
            key, category, used = f"tool-retries:{tool}", "bugfix", failures
            title = f"Retry failed {tool} calls with backoff"
            root = f"{tool} fails intermittently and a failed call is retried {retries} times."
            solution = (f"Set `tools.{tool}.max_retries` to {new_retries} with a 2 s backoff "
                        f"in `{AGENTS}`.")
            risk = "Retries add load on a struggling service; backoff bounds it."
        else:
            return None
    except EditError:
        return None
    return Draft(key, title, category, _severity(used), _problem(used),
                 _evidence(used), root, solution, make_diff(AGENTS, agents_yaml, text),
                 (AGENTS,), risk, tuple(used))


def _agent_draft(agent: str, findings: list[Finding], agents_yaml: str) -> Draft | None:
    persona = get(agents_yaml, ("agents", agent, "persona"))
    if not isinstance(persona, str) or CLARIFY in persona:
        return None
    try:
        text = append_to_block(agents_yaml, ("agents", agent, "persona"), CLARIFY)
    except EditError:
        return None
    return Draft(
        key=f"agent-clarify:{agent}",
        title=f"Have {agent} ask before guessing",
        category="enhancement",
        severity=_severity(findings),
        problem=_problem(findings),
        evidence=_evidence(findings),
        root_cause=f"Users keep correcting {agent}: it answers ambiguous requests on a guess.",
        solution=f"Add one line of guidance to {agent}'s persona in `{AGENTS}` (prompt only).",
        diff=make_diff(AGENTS, agents_yaml, text),
        affected_files=(AGENTS,),
        risk="Slightly more back-and-forth on ambiguous requests.",
        findings=tuple(findings),
    )


def _task_draft(task: str, findings: list[Finding], tasks_yaml: str) -> Draft | None:
    current = get(tasks_yaml, ("tasks", task))
    if not isinstance(current, dict):
        return None
    retries = int(current.get("retries") or 0)
    new = min(MAX_RETRIES, max(retries + 1, 2))
    if new == retries:
        return None
    try:
        text = set_scalar(tasks_yaml, ("tasks", task, "retries"), new)
    except EditError:
        return None
    return Draft(
        key=f"task-retries:{task}",
        title=f"Retry scheduled task {task}",
        category="bugfix",
        severity=_severity(findings),
        problem=_problem(findings),
        evidence=_evidence(findings),
        root_cause=f"{task} fails intermittently and is retried {retries} times.",
        solution=f"Set `tasks.{task}.retries` from {retries} to {new} in `{TASKS}` (schedule unchanged).",
        diff=make_diff(TASKS, tasks_yaml, text),
        affected_files=(TASKS,),
        risk="A task that fails for a lasting reason runs a few more times before alerting.",
        findings=tuple(findings),
    )


def _task_name(f: Finding) -> str | None:
    prefix = "Scheduled task "
    return f.summary[len(prefix):].split(" failed")[0] if f.summary.startswith(prefix) else None


def plan(findings: Iterable[Finding], read: Callable[[str], str | None]) -> list[Draft]:
    """Drafts for ``findings`` against the files ``read`` returns (at the base commit)."""
    by_tool: dict[str, list[Finding]] = {}
    by_agent: dict[str, list[Finding]] = {}
    by_task: dict[str, list[Finding]] = {}
    for f in findings:
        if f.kind == "user_corrections" and f.agent:
            by_agent.setdefault(f.agent, []).append(f)
        elif f.kind == "task_failure_trend" and (task := _task_name(f)):
            by_task.setdefault(task, []).append(f)
        elif f.tool:
            by_tool.setdefault(f.tool, []).append(f)
    agents_yaml, tasks_yaml = read(AGENTS), read(TASKS)
    drafts: list[Draft | None] = []
    if agents_yaml is not None:
        drafts += [_tool_draft(t, fs, agents_yaml) for t, fs in sorted(by_tool.items())]
        drafts += [_agent_draft(a, fs, agents_yaml) for a, fs in sorted(by_agent.items())]
    if tasks_yaml is not None:
        drafts += [_task_draft(t, fs, tasks_yaml) for t, fs in sorted(by_task.items())]
    return sorted((d for d in drafts if d is not None), key=lambda d: (_RANK[d.severity], d.key))


def manual_draft(diff: str, title: str, *, category: str = "bugfix", severity: str = "medium",
                 problem: str = "-", root_cause: str = "-", solution: str = "-", risk: str = "-",
                 evidence: str = "proposed by hand") -> Draft:
    """A draft for a diff a person or an agent wrote (``ouro proposals new``, MCP's
    ``propose_patch``); the loop's gates judge it like the planner's own.

    Raises:
        DiffError: ``diff`` is not a unified diff.
    """
    from ouroboros.capabilities.improve.proposals.diffs import parse_diff

    files = tuple(dict.fromkeys(c.path for c in parse_diff(diff)))
    return Draft(key=f"manual:{'+'.join(files)}:{title}", title=title, category=category,
                 severity=severity, problem=problem, evidence=(evidence,),
                 root_cause=root_cause, solution=solution, diff=diff, affected_files=files,
                 risk=risk)
