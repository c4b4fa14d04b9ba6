"""The monitoring window after a merge: compare the error rate before and after.

A window opens when a proposal is merged, with the error rate of the hour before as
its baseline. Each check compares the rate since the merge: a rise of more than 25 %
reverts (early, once enough calls were seen; or at the end of the window); a window
that closes without a spike is stable. A window that ends silent (the baseline had calls,
the window none or far fewer: an outage gives no error rate, not a good one) is never
stable: it is watched once more for its own length (telemetry may arrive late) and, still
silent then, closes as ``silent``. Time is always passed in, never read, so tests drive
the clock.

What is counted (`tally`): only the calls of what the merged change touched (the tool or
agent its planner key names; the whole workspace for a key naming neither), by telemetry
``source`` (the submitting token, ``local`` for the runtime's own), each source counting at
most ``SOURCE_SHARE`` of the window (`capped`). A verdict must not turn on one untrusted
source: if leaving any one of them out changes spike into no spike or back, or leaves no
trusted source and fewer than two others, the window is *held* (never reverted early;
ending held it is handled as silent: no revert, no keep, a human looks). The baseline hour
is held the same way: the window keeps the baseline without each untrusted source of that
hour (`Window.baseline_without`), and a verdict that any of them would flip (alone, or
with the same source left out of the window too) is held. A key naming neither a tool nor
an agent (a task's retries, a manual change) is judged on trusted sources' calls only,
baseline and window: any token's calls to any tool would otherwise count.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ouroboros.capabilities.improve.intake.events import (
    LOCAL_SOURCE,
    EventError,
    format_timestamp,
    parse_timestamp,
)
from ouroboros.capabilities.improve.proposals.proposal import iso, parse_time, read_state_or
from ouroboros.capabilities.improve.proposals.repo import exclusive
from ouroboros.storage.files import replace_file

DEFAULT_WINDOW = timedelta(hours=1)
MAX_RISE = 0.25
#: Below this baseline a relative rise is meaningless (0 % -> 0.1 % is "infinite").
RATE_FLOOR = 0.01
#: Calls needed after the merge before a spike may revert early.
MIN_CALLS_EARLY = 20
#: A window with fewer calls than this fraction of the baseline's is silent (with a
#: baseline of at least ``MIN_CALLS_EARLY`` calls; any baseline call makes zero silent).
SILENT_FRACTION = 0.1

#: The most of a window's counted calls one telemetry source may make (when there are
#: enough sources for that; with two, each counts as many calls as the smaller one).
SOURCE_SHARE = 1 / 3
#: Planner keys naming one tool (``tool-timeout:web_search``) or one agent.
_TOOL_KEYS = ("tool-timeout:", "tool-latency:", "tool-retries:")
_AGENT_KEYS = ("agent-clarify:",)

Verdict = Literal["watching", "stable", "spike", "silent"]


@dataclass
class Tally:
    """A window's tool calls in scope, per source: ``(calls, failures)``; and the events
    skipped for an unreadable timestamp."""

    sources: dict[str, tuple[int, int]]
    unreadable: int = 0


#: ``rate(since, until, key) -> Tally`` over the telemetry; ``key`` is the merged
#: proposal's planner key (None: the whole workspace).
RateFn = Callable[[datetime, datetime, "str | None"], Tally]


def scope_of(key: str | None) -> tuple[str, str] | None:
    """What a planner key changed: ``("tool", name)``, ``("agent", name)`` or None (a key
    naming neither, e.g. a task's retries or a manual change: the whole workspace)."""
    if not key:
        return None
    for prefix in _TOOL_KEYS:
        if key.startswith(prefix) and key[len(prefix):]:
            return ("tool", key[len(prefix):])
    for prefix in _AGENT_KEYS:
        if key.startswith(prefix) and key[len(prefix):]:
            return ("agent", key[len(prefix):])
    return None


def source_cap(counts: Iterable[int], share: float = SOURCE_SHARE) -> float:
    """The most calls any one source counts for: the largest ``C`` with every source's
    ``min(calls, C)`` at most ``max(share, 1/k)`` of their sum over the ``k`` sources."""
    ordered = sorted(c for c in counts if c > 0)
    if not ordered:
        return 0.0
    share = max(share, 1 / len(ordered))
    below = 0.0  # calls of the sources under the segment being tried
    for j, calls in enumerate(ordered):
        above = len(ordered) - j  # sources counting C each on this segment
        if share * above < 1:
            cap = share * below / (1 - share * above)
            if cap < calls:
                return max(cap, float(ordered[j - 1]) if j else 0.0)
        below += calls
    return float(ordered[-1])


def capped(sources: Mapping[str, tuple[int, int]]) -> tuple[float, int]:
    """The error rate and the number of calls counted, each source capped (`source_cap`;
    a capped source's failures scale with it)."""
    calls = {s: n for s, (n, _) in sources.items() if n > 0}
    if not calls:
        return 0.0, 0
    cap = source_cap(calls.values())
    weights = {s: min(n, cap) for s, n in calls.items()}
    counted = sum(weights.values())
    failed = sum(sources[s][1] * weights[s] / calls[s] for s in calls)
    return failed / counted, int(counted + 1e-9)


def tally(events: Iterable[Mapping[str, Any]], since: str, until: str,
          key: str | None) -> Tally:
    """The ``tool_call`` events in ``[since, until)`` (stored timestamp form) within the
    scope of ``key``, per source (``unknown`` for an event stored without one)."""
    scope = scope_of(key)
    counts: dict[str, tuple[int, int]] = {}
    unreadable = 0
    for event in events:
        if event.get("event_type") != "tool_call":
            continue
        if scope is not None and event.get(scope[0]) != scope[1]:
            continue
        ts = _stored_form(event.get("timestamp"))
        if ts is None:
            unreadable += 1
            continue
        if not since <= ts < until:
            continue
        source = event.get("source")
        source = source if isinstance(source, str) and source else "unknown"
        calls, failures = counts.get(source, (0, 0))
        counts[source] = (calls + 1, failures + (not event.get("success")))
    return Tally(counts, unreadable)


def _stored_form(value: object) -> str | None:
    """A timestamp in the stored form, or None when it is not one (a damaged day file
    line is skipped and counted, never fatal)."""
    try:
        return format_timestamp(parse_timestamp(value))
    except (EventError, OverflowError, ValueError):
        return None


@dataclass(frozen=True)
class Window:
    proposal_id: str
    merged_at: str
    until: str
    baseline: float
    baseline_calls: int
    #: The end of the one extension a silent window gets (None: not extended).
    extended_until: str | None = None
    #: The merged proposal's planner key: what the window judges (None: every tool).
    key: str | None = None
    #: The baseline without each untrusted source of the hour before (its capped rate):
    #: a verdict one of them flips is held, like one a source flips in the window.
    baseline_without: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    proposal_id: str
    verdict: Verdict
    baseline: float
    current: float
    calls: int
    #: Set when this check extended a silent window: the extension's end.
    extended_until: str | None = None
    baseline_calls: int = 0
    #: Why the window was held rather than judged (its verdict turns on one untrusted
    #: telemetry source, or it has too few); None: judged.
    held: str | None = None
    #: Events skipped for an unreadable timestamp.
    unreadable: int = 0

    @property
    def rise(self) -> float:
        return (self.current - self.baseline) / max(self.baseline, RATE_FLOOR)

    def describe(self) -> str:
        if self.held is not None:
            return (f"{self.calls} tool calls since the merge: held ({self.held}), no "
                    "verdict on the error rate"
                    + (f"; watching until {self.extended_until}" if self.extended_until
                       else ""))
        if self.verdict == "silent" or self.extended_until:
            return (f"{self.calls} tool calls since the merge against {self.baseline_calls} "
                    "in the hour before: silent, no verdict on the error rate"
                    + (f"; watching until {self.extended_until}" if self.extended_until
                       else ""))
        if self.calls == 0:  # a rate over no calls is no measurement
            return f"no calls since the merge yet (error rate before: {100 * self.baseline:.1f}%)"
        return (f"error rate {100 * self.baseline:.1f}% -> {100 * self.current:.1f}% "
                f"({100 * self.rise:+.0f}%, {self.calls} calls)")


def is_silent(baseline_calls: int, calls: int, min_calls: int = MIN_CALLS_EARLY) -> bool:
    """Far fewer calls than the baseline's: none when it had any, or under
    ``SILENT_FRACTION`` of a baseline of at least ``min_calls``."""
    if baseline_calls <= 0:
        return False
    if calls == 0:
        return True
    return baseline_calls >= min_calls and calls < SILENT_FRACTION * baseline_calls


def is_spike(baseline: float, current: float, max_rise: float = MAX_RISE) -> bool:
    """A rise of more than ``max_rise`` relative to the (floored) baseline."""
    return current - baseline > max_rise * max(baseline, RATE_FLOOR)


class Monitor:
    def __init__(self, path: Path, rate: RateFn, window: timedelta = DEFAULT_WINDOW,
                 max_rise: float = MAX_RISE, min_calls: int = MIN_CALLS_EARLY,
                 trusted: Iterable[str] = (LOCAL_SOURCE,)) -> None:
        self.path = Path(path)
        self.rate = rate
        self.window = window
        self.max_rise = max_rise
        self.min_calls = min_calls
        self.trusted = frozenset(trusted)
        self.windows: dict[str, Window] = {}
        self.reload()

    def reload(self) -> None:
        """The windows as saved: another process (the scheduler, a cron tick, an approval)
        may have opened or closed some since this one started."""
        self.windows = read_state_or(self.path, lambda data: {
            k: Window(**v) for k, v in data.items()}, dict)

    def _locked(self) -> AbstractContextManager[None]:
        """One read-modify-write of ``monitor.json`` at a time across processes."""
        return exclusive(self.path.with_name(self.path.name + ".lock"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps({k: asdict(v) for k, v in self.windows.items()},
                                           indent=2))

    def _in_scope(self, key: str | None,
                  sources: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """The sources a window with ``key`` counts: a key naming neither a tool nor an
        agent is judged on trusted sources only (else any token failing any tool counts)."""
        if scope_of(key) is None:
            return {s: v for s, v in sources.items() if s in self.trusted}
        return dict(sources)

    def open(self, proposal_id: str, merged_at: datetime, key: str | None = None) -> Window:
        sources = self._in_scope(key, self.rate(merged_at - self.window, merged_at, key).sources)
        baseline, calls = capped(sources)
        without = {s: capped({o: v for o, v in sources.items() if o != s})[0]
                   for s, v in sorted(sources.items()) if v[0] > 0 and s not in self.trusted}
        window = Window(proposal_id, iso(merged_at), iso(merged_at + self.window), baseline,
                        calls, key=key, baseline_without=without)
        with self._locked():
            self.reload()
            self.windows[proposal_id] = window
            self._save()
        return window

    def close(self, proposal_id: str) -> None:
        with self._locked():
            self.reload()
            if self.windows.pop(proposal_id, None) is not None:
                self._save()

    def check(self, now: datetime) -> list[Check]:
        """Judge every open window at ``now``; closed ones (stable, spike or silent) are
        removed. A window ending silent is extended once by its own length (saved). A
        window is judged and closed by one process only (another one ticking at the same
        time finds it closed)."""
        with self._locked():
            self.reload()
            return self._check(now)

    def _check(self, now: datetime) -> list[Check]:
        results = []
        extended: dict[str, Window] = {}
        for pid, w in sorted(self.windows.items()):
            merged, until = parse_time(w.merged_at), parse_time(w.until)
            counted = self.rate(merged, min(now, until), w.key)
            sources = self._in_scope(w.key, counted.sources)
            current, calls = capped(sources)
            spike = is_spike(w.baseline, current, self.max_rise) and calls > 0
            held = (self._held(w.baseline, sources, spike)
                    or self._held_by_baseline(w, sources, spike))
            spike = spike and held is None
            ended = now >= until
            extension = None
            if spike and (ended or calls >= self.min_calls):
                verdict: Verdict = "spike"
            elif ended and (held or is_silent(w.baseline_calls, calls, self.min_calls)):
                verdict = "watching"
                if w.extended_until is None:  # late telemetry still counts for the window
                    extension = iso(now + self.window)
                    extended[pid] = replace(w, extended_until=extension)
                elif now >= parse_time(w.extended_until):
                    verdict = "silent"
            elif ended:
                verdict = "stable"
            else:
                verdict = "watching"
            results.append(Check(pid, verdict, w.baseline, current, calls, extension,
                                 w.baseline_calls, held, counted.unreadable))
        closed = {c.proposal_id for c in results if c.verdict != "watching"}
        if closed or extended:
            self.windows = {k: extended.get(k, v) for k, v in self.windows.items()
                            if k not in closed}
            self._save()
        return results

    def _held(self, baseline: float, sources: Mapping[str, tuple[int, int]],
              spike: bool) -> str | None:
        """Why the verdict may not be taken on these calls: it turns on one untrusted
        source (leaving it out changes it), or leaving one out leaves nothing trusted and
        fewer than two sources. None: judged."""
        active = {s: v for s, v in sources.items() if v[0] > 0}
        for source in sorted(s for s in active if s not in self.trusted):
            rest = {s: v for s, v in active.items() if s != source}
            if not rest:
                return f"every call from one telemetry source, {source}"
            if len(rest) == 1 and not self.trusted & rest.keys():
                return f"calls from only two telemetry sources, {', '.join(sorted(active))}"
            current, calls = capped(rest)
            if (is_spike(baseline, current, self.max_rise) and calls > 0) != spike:
                return f"the verdict turns on one telemetry source, {source}"
        return None

    def _held_by_baseline(self, w: Window, sources: Mapping[str, tuple[int, int]],
                          spike: bool) -> str | None:
        """Why the verdict may not be taken on this baseline: leaving one untrusted source
        out of the hour before (and out of the window as well, if it posted there too)
        flips it. None: judged."""
        for source, baseline in sorted(w.baseline_without.items()):
            rest = {s: v for s, v in sources.items() if s != source}
            for window in (sources, rest) if rest != sources else (sources,):
                current, calls = capped(window)
                if (is_spike(baseline, current, self.max_rise) and calls > 0) != spike:
                    return (f"the verdict turns on one telemetry source's calls in the hour "
                            f"before the merge, {source}")
        return None
