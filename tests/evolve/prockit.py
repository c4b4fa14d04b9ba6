"""Processes the evolve tests start and expect gone: alive (zombies count as gone), the
ones still alive after SIGKILL has had time to land, and a last clean-up."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def survivors(pids: Iterable[int]) -> list[int]:
    """The ``pids`` still alive after waiting up to 10 s for them to go (a SIGKILL or a
    parent-death signal is asynchronous)."""
    wanted = list(pids)
    left = wanted
    for _ in range(100):
        left = [p for p in wanted if alive(p)]
        if not left:
            break
        time.sleep(0.1)
    return left


def kill_all(pids: Iterable[int]) -> None:
    """The test's own processes, if any are left."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
