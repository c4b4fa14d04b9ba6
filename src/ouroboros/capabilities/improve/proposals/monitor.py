"""The monitoring window after a merge: compare the error rate before and after.

A window opens when a proposal is merged, with the error rate of the hour before as
its baseline. Each check compares the rate since the merge: a rise of more than 25 %
reverts (early, once enough calls were seen; or at the end of the window); a window
that closes without a spike is stable. A window that ends silent (the baseline had calls,
the window none or far fewer: an outage gives no error rate, not a good one) is never
stable: it is watched once more for its own length (telemetry may arrive late) and, still
silent then, closes as ``silent``. Time is always passed in, never read, so tests drive
the clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from ouroboros.capabilities.improve.proposals.proposal import iso, parse_time, read_state
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

#: ``rate(since, until) -> (error rate, number of calls)`` over the telemetry.
RateFn = Callable[[datetime, datetime], tuple[float, int]]
Verdict = Literal["watching", "stable", "spike", "silent"]


@dataclass(frozen=True)
class Window:
    proposal_id: str
    merged_at: str
    until: str
    baseline: float
    baseline_calls: int
    #: The end of the one extension a silent window gets (None: not extended).
    extended_until: str | None = None


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

    @property
    def rise(self) -> float:
        return (self.current - self.baseline) / max(self.baseline, RATE_FLOOR)

    def describe(self) -> str:
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
                 max_rise: float = MAX_RISE, min_calls: int = MIN_CALLS_EARLY) -> None:
        self.path = Path(path)
        self.rate = rate
        self.window = window
        self.max_rise = max_rise
        self.min_calls = min_calls
        self.windows: dict[str, Window] = {}
        self.reload()

    def reload(self) -> None:
        """The windows as saved: another process (the scheduler, a cron tick, an approval)
        may have opened or closed some since this one started."""
        self.windows = read_state(self.path, lambda data: {
            k: Window(**v) for k, v in data.items()}) if self.path.exists() else {}

    def _locked(self) -> AbstractContextManager[None]:
        """One read-modify-write of ``monitor.json`` at a time across processes."""
        return exclusive(self.path.with_name(self.path.name + ".lock"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps({k: asdict(v) for k, v in self.windows.items()},
                                           indent=2))

    def open(self, proposal_id: str, merged_at: datetime) -> Window:
        baseline, calls = self.rate(merged_at - self.window, merged_at)
        window = Window(proposal_id, iso(merged_at), iso(merged_at + self.window), baseline, calls)
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
            current, calls = self.rate(merged, min(now, until))
            spike = is_spike(w.baseline, current, self.max_rise) and calls > 0
            ended = now >= until
            extension = None
            if spike and (ended or calls >= self.min_calls):
                verdict: Verdict = "spike"
            elif ended and is_silent(w.baseline_calls, calls, self.min_calls):
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
                                 w.baseline_calls))
        closed = {c.proposal_id for c in results if c.verdict != "watching"}
        if closed or extended:
            self.windows = {k: extended.get(k, v) for k, v in self.windows.items()
                            if k not in closed}
            self._save()
        return results
