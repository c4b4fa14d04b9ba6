"""Classifying a fitness trajectory as improving, plateau or declining.

Rule (docs/flux.md): take the fitness kept after each of the last `window` generations;
split it into an older and a newer half (the middle one goes to the newer half when
the count is odd). With `old` and `new` the halves' means, the relative change is
`(new - old) / max(|old|, tiny)`. It is *improving* above +epsilon, *declining* below
-epsilon, and a *plateau* otherwise, or when fewer than 4 generations are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

TINY = 1e-12


class Trend(StrEnum):
    IMPROVING = "improving"
    PLATEAU = "plateau"
    DECLINING = "declining"


def classify(series: Sequence[float], *, window: int = 10, epsilon: float = 0.01) -> Trend:
    recent = list(series)[-window:]
    if len(recent) < 4:
        return Trend.PLATEAU
    half = len(recent) // 2
    old = sum(recent[:half]) / half
    new = sum(recent[half:]) / (len(recent) - half)
    change = (new - old) / max(abs(old), TINY)
    if change > epsilon:
        return Trend.IMPROVING
    if change < -epsilon:
        return Trend.DECLINING
    return Trend.PLATEAU
