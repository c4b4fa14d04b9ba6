"""Usage metrics of a version: uses, failures, latency p50/p95, last use.

A call appends one line to the version's ``calls.log`` (O_APPEND, a shared lock, the
files kept open between calls): cheap enough for a sub-millisecond call. Reading a version folds the log into meta.json's
``metrics`` under an exclusive lock, so two processes never lose a count.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.storage.files import flocked, open_regular

WINDOW = 200


def empty() -> dict[str, Any]:
    return {"uses": 0, "failures": 0, "p50_ms": None, "p95_ms": None, "last_used": None,
            "recent_ms": []}


def clean(metrics: Any) -> dict[str, Any]:
    """Metrics as read from meta.json, every field of its type: meta.json's one field that
    changes with use is not in the fingerprint nor the ledger, so a scribbled field starts
    over rather than breaking every listing and call of the version."""
    out = empty()
    if not isinstance(metrics, dict):
        return out
    for key in ("uses", "failures"):
        value = metrics.get(key)
        if type(value) is int and value >= 0:
            out[key] = value
    recent = metrics.get("recent_ms")
    if isinstance(recent, list):
        out["recent_ms"] = [float(x) for x in recent if type(x) in (int, float)
                            and math.isfinite(x) and x >= 0][-WINDOW:]
    for key in ("p50_ms", "p95_ms"):
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            out[key] = float(value)
    if isinstance(metrics.get("last_used"), str):
        out["last_used"] = metrics["last_used"]
    return out


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
    """One call line, appended with one ``write`` under the shared lock.

    The lock and log files stay open between calls (``_Appender``): a warm call costs
    flock, fstat, write, flock, with no path lookups and no opens."""
    now = datetime.now(UTC)
    line = (f'{{"ok": {"true" if ok else "false"}, "ms": {round(elapsed_ms, 3)!r}, '
            f'"at": "{now.isoformat(timespec="seconds")}"}}\n').encode()
    _APPENDER.write(version_dir, line)


class _Appender:
    """Open (lock, log) descriptors per version folder, a bounded number of them.

    ``fold`` unlinks the log under the exclusive lock; an appender holding the shared lock
    sees that as a link count of 0 and reopens by name, so a line never lands in a log
    already folded. One process-wide mutex covers flock..write..unlock, because a flock
    belongs to the open file, which the threads of this process share."""

    LIMIT = 64

    def __init__(self) -> None:
        self._fds: dict[Path, tuple[int, int]] = {}
        self._mutex = threading.Lock()

    def write(self, version_dir: Path, line: bytes) -> None:
        with self._mutex:
            lock_fd, log_fd = self._open(version_dir)
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            try:
                if os.fstat(log_fd).st_nlink == 0:  # folded since it was opened
                    os.close(log_fd)
                    try:
                        log_fd = _open_log(version_dir)
                    except OSError:  # the version folder itself is gone
                        del self._fds[version_dir]
                        raise
                    self._fds[version_dir] = (lock_fd, log_fd)
                os.write(log_fd, line)
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                if version_dir not in self._fds:
                    os.close(lock_fd)

    def _open(self, version_dir: Path) -> tuple[int, int]:
        fds = self._fds.get(version_dir)
        if fds is not None:
            return fds
        if len(self._fds) >= self.LIMIT:
            self.close()
        lock_fd = open_regular(version_dir / ".lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               0o644)
        try:
            log_fd = _open_log(version_dir)
        except BaseException:
            os.close(lock_fd)
            raise
        self._fds[version_dir] = (lock_fd, log_fd)
        return lock_fd, log_fd

    def close(self) -> None:
        for lock_fd, log_fd in self._fds.values():
            os.close(lock_fd)
            os.close(log_fd)
        self._fds.clear()

    def _after_fork(self) -> None:
        self._mutex = threading.Lock()
        self.close()


def _open_log(version_dir: Path) -> int:
    return open_regular(version_dir / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


_APPENDER = _Appender()
os.register_at_fork(after_in_child=_APPENDER._after_fork)
atexit.register(_APPENDER.close)


def fold(version_dir: Path, write_meta: Any) -> dict[str, Any]:
    """Fold pending call lines into meta.json; return the up-to-date meta."""
    log = version_dir / LOG
    with locked(version_dir):
        meta: dict[str, Any] = json.loads((version_dir / "meta.json").read_text())
        if not log.is_file():
            return meta
        metrics = clean(meta.get("metrics"))
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
    with flocked(version_dir / ".lock", shared=shared, mode=0o644):
        yield
