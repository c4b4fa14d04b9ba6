"""Proposals on the kernel's own state: an agent's ``prompt``, ``routing`` or ``config``.

Not every fix is a file. When the kernel holds an agent's prompt, routing weights or
configuration (``agents/<agent>/prompt|routing|config``), a finding about that agent is
fixed there. The proposal is still a ``file`` patch (so it waits for a human like every
proposal) whose value is the change: type, target, the hash of the value it was made
against, and the new value. Approving it submits the inner patch through every gate
(signed by the runtime key, so its trust delegation must cover that type and target);
reverting it rolls the inner patch back.

The rules (pure, like the planner's):

| finding | target | change |
|---|---|---|
| users keep correcting an agent | ``agents/<agent>/prompt`` | one line of guidance |
| a tool timing out | ``agents/*/config`` with ``timeout_s.<tool>`` | double it (≤ 300 s), ``max_retries.<tool>`` ≥ 2 |
| a tool failing otherwise | ``agents/*/routing`` weight of the tool | halved |
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.planner import (
    CLARIFY,
    MAX_RETRIES,
    MAX_TIMEOUT_S,
    Draft,
    is_timeout,
)

STATE_TYPES = ("prompt", "routing", "config")
MIN_WEIGHT = 0.05

#: The ``file`` patch value of a proposal on kernel state.
STATE_VALUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["proposal", "kind", "type", "target", "base", "value", "category"],
    "additionalProperties": False,
    "properties": {
        "proposal": {"type": "string", "pattern": "^[0-9a-f]{6,32}$"},
        "kind": {"const": "state"},
        "type": {"enum": list(STATE_TYPES)},
        "target": {"type": "string", "pattern": "^agents/[A-Za-z0-9_.-]{1,64}/(prompt|routing|"
                   "config)$"},
        "base": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "value": {},
        "category": {"enum": ["bugfix", "optimization", "enhancement"]},
    },
}


@dataclass(frozen=True)
class StateChange:
    type: str
    target: str
    old: Any
    new: Any


def as_text(value: Any) -> str:
    """A value as reviewers read it (a prompt as text, anything else as sorted JSON)."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
    return text if text.endswith("\n") else text + "\n"


def state_diff(change: StateChange) -> str:
    return make_diff(f"kernel/{change.target}", as_text(change.old), as_text(change.new))


def _draft(key: str, title: str, category: str, findings: list[Finding], change: StateChange,
           root: str, solution: str, risk: str) -> Draft:
    severity = min((f.severity for f in findings),
                   key=lambda s: {"critical": 0, "high": 1, "medium": 2}.get(s, 3))
    evidence = tuple(dict.fromkeys([*(f"{f.kind}: {f.summary}" for f in findings),
                                    *(e for f in findings for e in f.evidence)]))
    return Draft(key, title, category, severity, "; ".join(f.summary for f in findings),
                 evidence, root, solution, state_diff(change), (f"kernel/{change.target}",),
                 risk, tuple(findings), state=change)


def state_drafts(findings: Iterable[Finding], values: Mapping[str, Any]) -> list[Draft]:
    """Drafts on kernel state for ``findings``, given the kernel's target -> value map."""
    drafts: list[Draft] = []
    by_agent: dict[str, list[Finding]] = {}
    by_tool: dict[str, list[Finding]] = {}
    for f in findings:
        if f.kind == "user_corrections" and f.agent:
            by_agent.setdefault(f.agent, []).append(f)
        elif f.tool:
            by_tool.setdefault(f.tool, []).append(f)
    for agent, found in sorted(by_agent.items()):
        target = f"agents/{agent}/prompt"
        prompt = values.get(target)
        if isinstance(prompt, str) and CLARIFY not in prompt:
            change = StateChange("prompt", target, prompt, prompt.rstrip() + "\n" + CLARIFY)
            drafts.append(_draft(f"state-prompt:{agent}", f"Have {agent} ask before guessing",
                                 "enhancement", found, change,
                                 f"Users keep correcting {agent}: it guesses at ambiguous "
                                 "requests.", f"Add one line of guidance to `{target}`.",
                                 "Slightly more back-and-forth on ambiguous requests."))
    for tool, found in sorted(by_tool.items()):
        agents = {f.agent for f in found}
        timeouts = [f for f in found if is_timeout(f)]
        failures = [f for f in found if f.kind in ("error_pattern", "tool_reliability")]
        for target, value in sorted(values.items()):
            parts = target.split("/")
            if len(parts) != 3 or parts[0] != "agents" or not isinstance(value, dict):
                continue
            if None not in agents and parts[1] not in agents:
                continue  # a finding about one agent's use of the tool changes only that agent
            if timeouts and parts[2] == "config":
                draft = _config_draft(tool, target, value, timeouts)
            elif failures and not timeouts and parts[2] == "routing":
                draft = _routing_draft(tool, target, value, failures)
            else:
                draft = None
            if draft is not None:
                drafts.append(draft)
    return drafts


def _config_draft(tool: str, target: str, value: dict[str, Any], found: list[Finding]
                  ) -> Draft | None:
    """``timeout_s`` and ``max_retries`` maps keyed by tool (a key named ``tools`` would be
    a grant to the kernel's audit, so the config keeps limits apart from the tool set)."""
    timeouts, retries = value.get("timeout_s"), value.get("max_retries")
    if not isinstance(timeouts, dict) or not isinstance(timeouts.get(tool), int | float):
        return None
    timeout = float(timeouts[tool])
    current = int(retries.get(tool) or 0) if isinstance(retries, dict) else 0
    new_timeout = min(MAX_TIMEOUT_S, max(int(timeout * 2), 1))
    new_retries = min(MAX_RETRIES, max(current, 2))
    if new_timeout == timeout and new_retries == current:
        return None
    new = copy.deepcopy(value)
    new["timeout_s"][tool] = new_timeout
    new["max_retries"] = {**(retries if isinstance(retries, dict) else {}), tool: new_retries}
    change = StateChange("config", target, value, new)
    return _draft(f"state-config:{target}:{tool}", f"Raise {tool} timeout in {target}", "bugfix",
                  found, change, f"{tool} calls are cut off by the {timeout:g} s timeout.",
                  f"Set `timeout_s.{tool}` to {new_timeout} and `max_retries.{tool}` to "
                  f"{new_retries} in `{target}`.", "Slow calls take longer to fail.")


def _routing_draft(tool: str, target: str, value: dict[str, Any], found: list[Finding]
                   ) -> Draft | None:
    weight = value.get(tool)
    if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= MIN_WEIGHT:
        return None
    new = {**value, tool: round(max(MIN_WEIGHT, weight / 2), 4)}
    change = StateChange("routing", target, value, new)
    return _draft(f"state-routing:{target}:{tool}", f"Route less to {tool} in {target}",
                  "bugfix", found, change, f"{tool} keeps failing and gets {weight:g} of the "
                  "routing weight.", f"Halve `{tool}`'s weight in `{target}` "
                  f"({weight:g} -> {new[tool]:g}).", "Other routes take more of the load.")
