"""Usage metrics of a version: uses, failures, latency p50/p95, last use.

A call appends one line to the version's ``calls.log`` (O_APPEND, a shared lock): cheap
enough for a sub-millisecond call. Reading a version folds the log into meta.json's
``metrics`` under an exclusive lock, so two processes never lose a count.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WINDOW = 200


def empty() -> dict[str, Any]:
    return {"uses": 0, "failures": 0, "p50_ms": None, "p95_ms": None, "last_used": None,
            "recent_ms": []}


def record(
    metrics: dict[str, Any], ok: bool, elapsed_ms: float, when: str | None = None
) -> dict[str, Any]:
    """Pure: the metrics after one more call."""
    out = {**empty(), **metrics}
    out["uses"] += 1
    if not ok:
        out["failures"] += 1
    recent = [*out["recent_ms"], round(elapsed_ms, 3)][-WINDOW:]
    out["recent_ms"] = recent
    out["p50_ms"] = percentile(recent, 50)
    out["p95_ms"] = percentile(recent, 95)
    out["last_used"] = when or datetime.now(UTC).isoformat(timespec="seconds")
    return out


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure was really observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return float(ordered[int(rank) - 1])


LOG = "calls.log"


def append(version_dir: Path, ok: bool, elapsed_ms: float) -> None:
    line = json.dumps({"ok": ok, "ms": round(elapsed_ms, 3),
                       "at": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n"
    with locked(version_dir, shared=True):
        fd = os.open(version_dir / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def fold(version_dir: Path, write_meta: Any) -> dict[str, Any]:
    """Fold pending call lines into meta.json; return the up-to-date meta."""
    log = version_dir / LOG
    with locked(version_dir):
        meta: dict[str, Any] = json.loads((version_dir / "meta.json").read_text())
        if not log.is_file():
            return meta
        metrics = meta.get("metrics") or empty()
        for raw in log.read_text().splitlines():
            try:
                call = json.loads(raw)
                metrics = record(metrics, bool(call["ok"]), float(call["ms"]), call["at"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a crashed writer: skip it
        meta["metrics"] = metrics
        write_meta(version_dir / "meta.json", meta)
        log.unlink()
        return meta


@contextmanager
def locked(version_dir: Path, shared: bool = False) -> Iterator[None]:
    with open(version_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
