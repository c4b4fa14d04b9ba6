"""Usage metrics of a version: uses, failures, latency p50/p95, last use.

Kept in meta.json (the only part of a version that changes), updated under a file lock
so two processes calling one tool never lose a count.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WINDOW = 200


def empty() -> dict[str, Any]:
    return {"uses": 0, "failures": 0, "p50_ms": None, "p95_ms": None, "last_used": None,
            "recent_ms": []}


def record(metrics: dict[str, Any], ok: bool, elapsed_ms: float) -> dict[str, Any]:
    """Pure: the metrics after one more call."""
    out = {**empty(), **metrics}
    out["uses"] += 1
    if not ok:
        out["failures"] += 1
    recent = [*out["recent_ms"], round(elapsed_ms, 3)][-WINDOW:]
    out["recent_ms"] = recent
    out["p50_ms"] = percentile(recent, 50)
    out["p95_ms"] = percentile(recent, 95)
    out["last_used"] = datetime.now(UTC).isoformat(timespec="seconds")
    return out


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure was really observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return float(ordered[int(rank) - 1])


@contextmanager
def locked(version_dir: Path) -> Iterator[None]:
    with open(version_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
