"""Backoff and circuit breakers, persisted in the workspace.

The seed's rules: three consecutive rejections (by a human or a gate) pause analysis
for 48 h; a failed implementation pauses its category for 24 h; an automatic revert halts every proposal until a human
resets it. State is one JSON file replaced atomically, so a crash never leaves a
half-written breaker.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ouroboros.capabilities.improve.proposals.proposal import iso, parse_time, read_state_or
from ouroboros.capabilities.improve.proposals.repo import exclusive
from ouroboros.storage.files import replace_file

REJECTIONS_TO_PAUSE = 3
ANALYSIS_PAUSE = timedelta(hours=48)
CATEGORY_PAUSE = timedelta(hours=24)


@dataclass
class BreakerState:
    consecutive_rejections: int = 0
    analysis_paused_until: str | None = None
    category_paused_until: dict[str, str] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str = ""


class Breakers:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.state = self._load()

    def _load(self) -> BreakerState:
        return read_state_or(self.path, lambda data: BreakerState(**data), BreakerState)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps(asdict(self.state), indent=2, sort_keys=True))

    def _locked(self) -> AbstractContextManager[None]:
        """One read-modify-write at a time across processes: each event reloads the file
        first, so a process started before another one's halt neither misses nor erases it."""
        return exclusive(self.path.with_name(self.path.name + ".lock"))

    def _fresh(self) -> BreakerState:
        self.state = self._load()
        return self.state

    # -- questions --------------------------------------------------------------------
    def halted(self) -> str | None:
        """Why nothing may be proposed or merged (after an auto-revert), or None."""
        state = self._fresh()
        if state.halted:
            return f"all proposals halted: {state.halt_reason}; run `ouro proposals reset`"
        return None

    def analysis_blocked(self, now: datetime) -> str | None:
        """Why no new proposal may be made now (halt or rejection backoff), or None."""
        blocked = self.halted()
        if blocked:
            return blocked
        until = self.state.analysis_paused_until  # fresh: halted() reloaded it
        if until and now < parse_time(until):
            return (f"analysis paused until {until} after {REJECTIONS_TO_PAUSE} consecutive "
                    "rejections; `ouro proposals reset` resumes it")
        return None

    def category_blocked(self, category: str, now: datetime) -> str | None:
        blocked = self.analysis_blocked(now)
        if blocked:
            return blocked
        until = self.state.category_paused_until.get(category)
        if until and now < parse_time(until):
            return f"category {category} paused until {until} after a failed implementation"
        return None

    # -- events -----------------------------------------------------------------------
    def record_rejection(self, now: datetime) -> bool:
        """Count a rejection; True when it is the one that pauses analysis."""
        with self._locked():
            state = self._fresh()
            state.consecutive_rejections += 1
            tripped = state.consecutive_rejections >= REJECTIONS_TO_PAUSE
            if tripped:
                state.analysis_paused_until = iso(now + ANALYSIS_PAUSE)
                state.consecutive_rejections = 0
            self._save()
        return tripped

    def record_approval(self) -> None:
        with self._locked():
            self._fresh().consecutive_rejections = 0
            self._save()

    def record_implementation_failure(self, category: str, now: datetime) -> None:
        with self._locked():
            self._fresh().category_paused_until[category] = iso(now + CATEGORY_PAUSE)
            self._save()

    def halt(self, reason: str) -> None:
        with self._locked():
            state = self._fresh()
            state.halted = True
            state.halt_reason = reason
            self._save()

    def reset(self) -> None:
        """A human's reset: clears the halt, the pauses and the rejection count."""
        with self._locked():
            self.state = BreakerState()
            self._save()

    def as_dict(self) -> dict[str, object]:
        return asdict(self._fresh())
