"""The monitoring window after a merge: compare the error rate before and after.

A window opens when a proposal is merged, with the error rate of the hour before as
its baseline. Each check compares the rate since the merge: a rise of more than 25 %
reverts (early, once enough calls were seen; or at the end of the window); a window
that closes without a spike is stable. Time is always passed in, never read, so tests
drive the clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from ouroboros.capabilities.improve.proposals.proposal import iso, parse_time, read_state
from ouroboros.storage.files import replace_file

DEFAULT_WINDOW = timedelta(hours=1)
MAX_RISE = 0.25
#: Below this baseline a relative rise is meaningless (0 % -> 0.1 % is "infinite").
RATE_FLOOR = 0.01
#: Calls needed after the merge before a spike may revert early.
MIN_CALLS_EARLY = 20

#: ``rate(since, until) -> (error rate, number of calls)`` over the telemetry.
RateFn = Callable[[datetime, datetime], tuple[float, int]]
Verdict = Literal["watching", "stable", "spike"]


@dataclass(frozen=True)
class Window:
    proposal_id: str
    merged_at: str
    until: str
    baseline: float
    baseline_calls: int


@dataclass(frozen=True)
class Check:
    proposal_id: str
    verdict: Verdict
    baseline: float
    current: float
    calls: int

    @property
    def rise(self) -> float:
        return (self.current - self.baseline) / max(self.baseline, RATE_FLOOR)

    def describe(self) -> str:
        if self.calls == 0:  # a rate over no calls is no measurement
            return f"no calls since the merge yet (error rate before: {100 * self.baseline:.1f}%)"
        return (f"error rate {100 * self.baseline:.1f}% -> {100 * self.current:.1f}% "
                f"({100 * self.rise:+.0f}%, {self.calls} calls)")


def is_spike(baseline: float, current: float, max_rise: float = MAX_RISE) -> bool:
    """A rise of more than ``max_rise`` relative to the (floored) baseline."""
    return current - baseline > max_rise * max(baseline, RATE_FLOOR)


class Monitor:
    def __init__(self, path: Path, rate: RateFn, window: timedelta = DEFAULT_WINDOW,
                 max_rise: float = MAX_RISE, min_calls: int = MIN_CALLS_EARLY) -> None:
        self.path = Path(path)
        self.rate = rate
        self.window = window
        self.max_rise = max_rise
        self.min_calls = min_calls
        self.windows: dict[str, Window] = {}
        if self.path.exists():
            self.windows = read_state(self.path, lambda data: {
                k: Window(**v) for k, v in data.items()})

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps({k: asdict(v) for k, v in self.windows.items()},
                                           indent=2))

    def open(self, proposal_id: str, merged_at: datetime) -> Window:
        baseline, calls = self.rate(merged_at - self.window, merged_at)
        window = Window(proposal_id, iso(merged_at), iso(merged_at + self.window), baseline, calls)
        self.windows[proposal_id] = window
        self._save()
        return window

    def close(self, proposal_id: str) -> None:
        if self.windows.pop(proposal_id, None) is not None:
            self._save()

    def check(self, now: datetime) -> list[Check]:
        """Judge every open window at ``now``; closed ones (stable or spike) are removed."""
        results = []
        for pid, w in sorted(self.windows.items()):
            merged, until = parse_time(w.merged_at), parse_time(w.until)
            current, calls = self.rate(merged, min(now, until))
            spike = is_spike(w.baseline, current, self.max_rise) and calls > 0
            ended = now >= until
            if spike and (ended or calls >= self.min_calls):
                verdict: Verdict = "spike"
            elif ended:
                verdict = "stable"
            else:
                verdict = "watching"
            results.append(Check(pid, verdict, w.baseline, current, calls))
        closed = {c.proposal_id for c in results if c.verdict != "watching"}
        if closed:
            self.windows = {k: v for k, v in self.windows.items() if k not in closed}
            self._save()
        return results
