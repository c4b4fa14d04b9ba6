"""Rule-based analysis of sanitized telemetry (the plan's EvalAgent, offline): the
aggregation.

Stability first: recurring error patterns, tool reliability, timeout clusters,
p95 latency regressions, user corrections and task-failure trends, in that order
of priority. The analysis is one pass over the events into small aggregates
(:class:`Aggregate`), then pure rules over the aggregates (:mod:`.rules`), so a million events
stream through in seconds and the same aggregates feed the optional LLM analyser.

The window is the 24 hours before ``now``; the seven days before that are the
baseline for trends. A tool below every threshold produces no finding at all:
noise is not a proposal.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from ouroboros.capabilities.improve.analysis.findings import (
    CRITICAL_CODES,
    TIMEOUT_CODES,
    Thresholds,
    p95,
    top,
)
from ouroboros.capabilities.improve.intake.events import (
    EventError,
    format_timestamp,
    parse_timestamp,
    source_of,
)
from ouroboros.capabilities.improve.intake.placeholders import fold_placeholders

#: Distinct keys each table of an :class:`Aggregate` holds at most (tools, (tool, agent)
#: pairs, error patterns, agents, tasks), and nested entries (an agent under a tool or a
#: pattern, a session, a correction type) in all. Names are the sender's: without a cap a
#: flood of fresh names grew the analysis by ~1.4 kB per event. A key already held is
#: always counted; what a full table refuses is counted in ``Aggregate.overflow``.
MAX_KEYS = 20_000
#: A new error message of a full pattern table joins its tool's and code's catch-all.
OTHER_MESSAGES = "<other messages>"
#: Latencies a tool keeps for its p95 (window and baseline each): a uniform sample of
#: every call past that, so memory does not grow with the number of events.
MAX_SAMPLES = 10_000
#: The stored timestamp form (`format_timestamp`); anything else is parsed or skipped.
_STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Samples(list[float]):
    """Latencies for a p95: all of them up to ``MAX_SAMPLES``, then a uniform reservoir
    sample (deterministic: the same events give the same sample). ``seen`` counts all."""

    __slots__ = ("_state", "seen")

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self._state = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self) < MAX_SAMPLES:
            self.append(value)
            return
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        slot = (self._state >> 11) % self.seen
        if slot < MAX_SAMPLES:
            self[slot] = value


@lru_cache(maxsize=8192)
def _pattern_of(message: str) -> str:
    """Numbers, hex ids and the sanitizer's typed placeholders vary between occurrences
    of the same error; fold them."""
    text = re.sub(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b", "<id>", fold_placeholders(message))
    text = re.sub(r"\d+(?:\.\d+)?", "<n>", text)
    return " ".join(text.split())[:160]


def _is_timeout(code: str | None, message: str | None) -> bool:
    if code in TIMEOUT_CODES:
        return True
    lowered = (message or "").lower()
    return "timed out" in lowered or "timeout" in lowered


class ToolStats:
    __slots__ = ("agents", "calls", "failures", "latencies", "timeouts")

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.timeouts = 0
        self.latencies = Samples()
        self.agents: Counter[str] = Counter()  # failures per agent


class Aggregate:
    """Everything the rules need, built in one pass over the events."""

    def __init__(self, now: datetime, thresholds: Thresholds | None = None) -> None:
        self.thresholds = th = thresholds or Thresholds()
        self.now = format_timestamp(now)
        self.start = format_timestamp(now - timedelta(hours=th.window_hours))
        self.baseline_start = format_timestamp(
            now - timedelta(hours=th.window_hours) - timedelta(days=th.baseline_days)
        )
        self.events = 0
        self.unreadable = 0  # events without a usable timestamp (skipped, never fatal)
        self.overflow = 0  # keys refused by a full table (see MAX_KEYS)
        self._entries = 0  # nested entries held (agents, sessions, correction types)
        self.recent: dict[str, ToolStats] = defaultdict(ToolStats)
        self.recent_by_agent: dict[tuple[str, str], ToolStats] = defaultdict(ToolStats)
        self.baseline_latency: dict[str, Samples] = defaultdict(Samples)
        self.patterns: Counter[tuple[str, str, str, str]] = Counter()
        self.pattern_agents: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
        #: Patterns a trusted source declared critical (a critical code or severity).
        self.critical: set[tuple[str, str, str, str]] = set()
        #: Critical declarations from other sources: how many, and from which sources.
        self.critical_claims: Counter[tuple[str, str, str, str]] = Counter()
        self.critical_sources: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
        self.timeout_buckets: dict[str, Counter[str]] = defaultdict(Counter)
        self.corrections: dict[str, Counter[str]] = defaultdict(Counter)
        #: An agent's corrections in the window by source (each source's share is capped).
        self.correction_sources: dict[str, Counter[str]] = defaultdict(Counter)
        self.baseline_corrections: Counter[str] = Counter()
        self.sessions: dict[str, set[str]] = defaultdict(set)
        self.feedback: dict[str, Counter[str]] = defaultdict(Counter)
        self.escalations: Counter[tuple[str, str]] = Counter()
        self.task_failures: Counter[str] = Counter()
        self.task_retries: Counter[str] = Counter()
        self.baseline_task_failures: Counter[str] = Counter()

    def add(self, event: Mapping[str, Any]) -> None:
        ts = event.get("timestamp")
        if not isinstance(ts, str) or len(ts) != 24 or not _STORED.fullmatch(ts):
            ts = _timestamp_or_none(ts)
            if ts is None:
                self.unreadable += 1
                return
        if ts >= self.now or ts < self.baseline_start:
            return
        self.events += 1
        recent = ts >= self.start
        kind = event.get("event_type")
        agent = event.get("agent") or ""
        if kind == "tool_call":
            tool = event.get("tool") or "unknown"
            latency = event.get("latency_ms")
            if not recent:
                if latency is not None and self._admit(self.baseline_latency, tool):
                    self.baseline_latency[tool].add(latency)
                return
            if not self._admit(self.recent, tool):
                return
            session = event.get("session_id")
            if session and self._admit(self.sessions, agent):
                self._nested(self.sessions[agent], session)
            failed = not event.get("success")
            pair = self._admit(self.recent_by_agent, (tool, agent))
            tables = ((self.recent[tool], self.recent_by_agent[(tool, agent)]) if pair
                      else (self.recent[tool],))
            for stats in tables:
                stats.calls += 1
                if latency is not None:
                    stats.latencies.add(latency)
            if not failed:
                return
            code = event.get("error_code") or "ERROR"
            message = event.get("error_message") or ""
            for stats in tables:
                stats.failures += 1
            if agent and pair:
                self._nested(self.recent[tool].agents, agent)
            self._pattern(("tool_call", tool, code, _pattern_of(message)), agent, event)
            if _is_timeout(code, message):
                self.recent[tool].timeouts += 1
                self.timeout_buckets[tool][ts[:15]] += 1
        elif kind == "user_correction":
            if recent:
                if self._admit(self.corrections, agent):
                    self._nested(self.corrections[agent],
                                 event.get("correction_type") or "other")
                    self._nested(self.correction_sources[agent], source_of(event))
            elif self._admit(self.baseline_corrections, agent):
                self.baseline_corrections[agent] += 1
        elif kind == "task_failure":
            task = event.get("task_name") or "unknown"
            if not recent:
                if self._admit(self.baseline_task_failures, task):
                    self.baseline_task_failures[task] += 1
                return
            if not self._admit(self.task_failures, task):
                return
            self.task_failures[task] += 1
            self.task_retries[task] += int(event.get("retry_count") or 0)
            category = event.get("error_category") or "ERROR"
            message = _pattern_of(event.get("error_message") or "")
            self._pattern(("task_failure", task, category, message), agent, event)
        elif kind == "feedback" and recent:
            if self._admit(self.feedback, agent):
                self.feedback[agent][event.get("rating") or "up"] += 1
        elif kind == "escalation" and recent:
            reason = (agent, event.get("reason_category") or "other")
            if self._admit(self.escalations, reason):
                self.escalations[reason] += 1

    def _admit(self, table: Mapping[Any, Any], key: object) -> bool:
        """Is ``key`` held by ``table`` or is there room for it (else counted as overflow)?"""
        if key in table or len(table) < MAX_KEYS:
            return True
        self.overflow += 1
        return False

    def _nested(self, held: Counter[str] | set[str], key: str) -> None:
        """Counts ``key`` in a nested table, within the budget of nested entries in all."""
        if key not in held:
            if self._entries >= MAX_KEYS:
                self.overflow += 1
                return
            self._entries += 1
        if isinstance(held, set):
            held.add(key)
        else:
            held[key] += 1

    def _pattern(
        self, key: tuple[str, str, str, str], agent: str, event: Mapping[str, Any]
    ) -> None:
        if key not in self.patterns and len(self.patterns) >= MAX_KEYS:
            key = (*key[:3], OTHER_MESSAGES)
            if not self._admit(self.patterns, key):
                return
        self.patterns[key] += 1
        if agent:
            self._nested(self.pattern_agents[key], agent)
        if event.get("severity") == "critical" or key[2] in CRITICAL_CODES:
            source = source_of(event)
            if source in self.thresholds.trusted_sources:
                self.critical.add(key)
            else:  # a sender's word: one span among any number of successes is no alert
                self.critical_claims[key] += 1
                self._nested(self.critical_sources[key], source)

    def is_critical(self, key: tuple[str, str, str, str]) -> bool:
        """Declared critical by a trusted source, or ``min_pattern_count`` times by two
        sources or more."""
        return key in self.critical or (
            self.critical_claims[key] >= self.thresholds.min_pattern_count
            and len(self.critical_sources.get(key, ())) >= 2)

    def corrections_of(self, agent: str) -> int:
        """An agent's corrections in the window without the largest untrusted source's:
        one token's reports alone never reach a threshold."""
        count = sum(self.corrections[agent].values())
        untrusted = [n for s, n in self.correction_sources.get(agent, Counter()).items()
                     if s not in self.thresholds.trusted_sources]
        return count - max(untrusted, default=0)

    def summary(self) -> dict[str, Any]:
        """Aggregates only (no event text beyond sanitized patterns), for the LLM analyser."""
        tools = {
            tool: {
                "calls": s.calls,
                "failures": s.failures,
                "timeouts": s.timeouts,
                "p95_ms": p95(s.latencies) if s.latencies else None,
            }
            for tool, s in sorted(self.recent.items())
        }
        patterns = [
            {"source": k[0], "subject": k[1], "code": k[2], "message": k[3], "count": n}
            for k, n in top(self.patterns, 20)
        ]
        return {
            "window": {"start": self.start, "end": self.now},
            "events": self.events,
            "overflow": self.overflow,
            "tools": tools,
            "error_patterns": patterns,
            "corrections": {a: dict(t) for a, t in sorted(self.corrections.items())},
            "task_failures": dict(self.task_failures),
            "escalations": [
                {"agent": a, "reason_category": r, "count": n}
                for (a, r), n in self.escalations.items()
            ],
        }


def _timestamp_or_none(value: object) -> str | None:
    try:
        return format_timestamp(parse_timestamp(value))
    except (EventError, OverflowError, ValueError):
        return None


def aggregate(
    events: Iterable[Mapping[str, Any]], now: datetime, thresholds: Thresholds | None = None
) -> Aggregate:
    """One pass over ``events`` into the aggregates the rules and the LLM read."""
    agg = Aggregate(now, thresholds)
    add = agg.add
    for event in events:
        add(event)
    return agg


def error_rate(
    events: Iterable[Mapping[str, Any]],
    tool: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> float:
    """Failed fraction of ``tool_call`` events in ``[since, until)``; 0.0 if none.

    The monitoring window after a merge compares this before and after.
    """
    low = format_timestamp(since) if since else ""
    high = format_timestamp(until) if until else "~"
    calls = failures = 0
    for event in events:
        if event.get("event_type") != "tool_call" or (
            tool is not None and event.get("tool") != tool
        ):
            continue
        ts = event.get("timestamp")
        if not isinstance(ts, str) or len(ts) != 24:
            ts = _timestamp_or_none(ts)
        if ts is not None and low <= ts < high:
            calls += 1
            failures += not event.get("success")
    return failures / calls if calls else 0.0
