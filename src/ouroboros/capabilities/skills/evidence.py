"""Where a tool's evidence comes from, whether it is enough, and whether the tool is served.

A model that writes a tool and its tests grades its own work: a lookup table posing as an
adder passes the cases its author chose. So every case records who wrote it (`source`), and
only cases from somewhere the code's author did not control count as evidence:

- ``operator``: a person (hand-written tools, `ouro tool prove`);
- ``task``: examples written in the user's task (``{"a": 2, "b": 3} -> 5``);
- ``test_writer``: a separate model call that saw the task but never the code, and whose
  cases the code-writing call never sees (they are hidden cases);
- ``differential``: the output of an existing tool given as the reference, on the same inputs.

``author`` cases (the code's own model) gate a version but prove nothing; ``property`` cases
(outputs checked against the output schema) catch garbage but not wrong answers, so neither
counts. An LLM-made version with fewer than `SkillPolicy.min_independent` independent cases
is **unproven**: by policy it is registered but not served (``hide``, the default), waits for
approval (``pending``), or is served anyway (``serve``, for experiments). It becomes served
by passing independent cases (`prove`), by approval, or, where the policy allows, after a
number of successful real uses.

Everything here is pure: the store records the summary in meta.json, the kernel's test gate
recomputes it from the stored cases, and the Solver and search ask `is_served`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .spec import CASE_SOURCES, TestCase

INDEPENDENT_SOURCES = frozenset({"operator", "task", "test_writer", "differential"})
POLICY_TARGET = "config/skills/policy"
UnprovenPolicy = Literal["hide", "pending", "serve"]


@dataclass(frozen=True)
class Evidence:
    """What a version's cases establish (stored in meta.json as ``evidence``)."""

    origin: str
    cases: dict[str, int]  # every case, counted by source
    independent: int  # cases with an expected value or error, from an independent source
    properties: int  # schema (property) cases

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def proven(self, min_independent: int) -> bool:
        return self.origin == "operator" or self.independent >= min_independent


def evidence_of(cases: Sequence[TestCase], origin: str) -> Evidence:
    counts = Counter(c.source for c in cases)
    independent = sum(1 for c in cases
                      if c.source in INDEPENDENT_SOURCES and c.schema is None)
    properties = sum(1 for c in cases if c.schema is not None)
    return Evidence(origin, {s: counts[s] for s in CASE_SOURCES if counts[s]}, independent,
                    properties)


@dataclass(frozen=True)
class SkillPolicy:
    """How unproven tools are treated; the workspace's ``config/skills/policy`` value.

    Attributes:
        unproven: ``hide`` (registered, not served by solve or search), ``pending`` (the
            version waits for human approval) or ``serve``.
        min_independent: independent cases a version needs to be proven.
        min_author_cases: cases the code-writing model must write itself (a floor on effort,
            not evidence).
        min_test_writer_cases: cases a test-writing answer must hold to be used.
        promote_after_uses: serve an unproven version once it has this many successful real
            calls and no failed one (None: never by use alone).
    """

    unproven: UnprovenPolicy = "hide"
    min_independent: int = 3
    min_author_cases: int = 3
    min_test_writer_cases: int = 3
    promote_after_uses: int | None = None

    def __post_init__(self) -> None:
        if self.unproven not in ("hide", "pending", "serve"):
            raise ValueError(f"policy 'unproven' must be hide, pending or serve, not "
                             f"{self.unproven!r}")
        for name in ("min_independent", "min_author_cases", "min_test_writer_cases"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
                raise ValueError(f"policy {name!r} must be an integer from 1 to 100")
        uses = self.promote_after_uses
        if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool)
                                 or not 1 <= uses <= 1_000_000):
            raise ValueError("policy 'promote_after_uses' must be null or a positive integer")

    @classmethod
    def from_value(cls, value: Any) -> SkillPolicy:
        """The policy from a config value (None: the defaults).

        Raises:
            ValueError: unknown keys or values out of range.
        """
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError("the skills policy must be a JSON object")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown skills policy keys {sorted(unknown)}")
        return cls(**dict(value))


def stored_evidence(meta: Mapping[str, Any]) -> Evidence | None:
    """The evidence a version recorded (None for versions registered before evidence was)."""
    raw = meta.get("evidence")
    if not isinstance(raw, Mapping):
        return None
    try:
        return Evidence(str(raw["origin"]), dict(raw["cases"]), int(raw["independent"]),
                        int(raw["properties"]))
    except (KeyError, TypeError, ValueError):
        return None


Status = Literal["operator", "proven", "reviewed", "used", "served_by_policy", "unproven",
                 "legacy"]


def status_of(meta: Mapping[str, Any], policy: SkillPolicy) -> Status:
    """Why a version is served, or ``unproven`` when it is not.

    A version with review reasons can only be current in a workspace once a person approved
    its patch (the store refuses them elsewhere), so being asked about one means approved.
    """
    evidence = stored_evidence(meta)
    if evidence is None:
        return "legacy"
    if evidence.origin == "operator":
        return "operator"
    if meta.get("review"):
        return "reviewed"
    if evidence.proven(policy.min_independent):
        return "proven"
    if policy.unproven == "serve":
        return "served_by_policy"
    metrics = meta.get("metrics") or {}
    uses, failures = int(metrics.get("uses") or 0), int(metrics.get("failures") or 0)
    if policy.promote_after_uses is not None and failures == 0 and \
            uses >= policy.promote_after_uses:
        return "used"
    return "unproven"


def is_served(meta: Mapping[str, Any], policy: SkillPolicy) -> bool:
    return status_of(meta, policy) != "unproven"


# -- a child's contract with its parent ---------------------------------------------------

@dataclass(frozen=True)
class ContractChange:
    """A parent case the child expects differently (only visible cases may change)."""

    index: int
    input: Any
    before: dict[str, Any]
    after: dict[str, Any]

    def describe(self) -> str:
        return (f"changes parent case {self.index} (input {_short(self.input)}): "
                f"{_short(self.before)} -> {_short(self.after)}")


class ContractBroken(ValueError):
    """The child drops or changes a parent case it may not; the message names it (never a
    hidden case's content)."""


def _expectation(case: TestCase) -> dict[str, Any]:
    if case.expected_error is not None:
        return {"error": case.expected_error}
    if case.schema is not None:
        return {"schema": case.schema}
    return {"expected": case.expected}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def contract_changes(parent: Sequence[TestCase], child: Sequence[TestCase]
                     ) -> list[ContractChange]:
    """The parent's visible cases the child changes; raise if it drops any parent case or
    changes a hidden one.

    Raises:
        ContractBroken: a parent case is missing from the child, or a hidden one changed.
    """
    by_input: dict[str, list[TestCase]] = {}
    for c in child:
        by_input.setdefault(_key(c.input), []).append(c)
    changes = []
    for p in parent:
        same_input = by_input.get(_key(p.input), [])
        want = _key(_expectation(p))
        if any(_key(_expectation(c)) == want for c in same_input):
            continue
        if p.hidden:
            raise ContractBroken(f"hidden parent case {p.index} is missing or changed; hidden "
                                 "cases are never dropped or changed by a mutation")
        if not same_input:
            raise ContractBroken(f"parent case {p.index} (input {_short(p.input)}) is "
                                 "missing; a mutation keeps every parent case")
        changes.append(ContractChange(p.index, p.input, _expectation(p),
                                      _expectation(same_input[0])))
    return changes


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
