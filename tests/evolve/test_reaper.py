"""The watcher that kills fitness commands' groups once the process tree that ran them is
gone: closing its pipe stands for that death (the kernel closes it the same way)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from prockit import alive, survivors

from ouroboros.capabilities.evolve import reaper


@pytest.fixture
def fresh() -> Iterator[None]:
    """A watcher of this test's own, closed afterwards (its groups die with it)."""
    saved, reaper._watcher = reaper._watcher, None
    try:
        yield
    finally:
        if reaper._watcher is not None:
            os.close(reaper._watcher[2])
            reaper._watcher[1].wait(10)
        reaper._watcher = saved


def _group() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


def _die() -> subprocess.Popen[bytes]:
    """Close the pipe as the death of every writer would, and wait for the watcher."""
    assert reaper._watcher is not None
    _, proc, fd = reaper._watcher
    os.close(fd)
    reaper._watcher = None
    assert proc.wait(10) == 0
    return proc


def test_the_groups_still_named_are_killed_when_the_pipe_closes(fresh: None) -> None:
    kept, done = _group(), _group()
    try:
        reaper.track(kept.pid)
        reaper.track(done.pid)
        reaper.untrack(done.pid)  # its scoring ended: no longer the watcher's
        _die()
        assert survivors([kept.pid]) == []
        assert alive(done.pid)  # a group taken off the list is left alone
    finally:
        for p in (kept, done):
            p.kill()
            p.wait()


def test_a_killed_watcher_is_replaced_for_the_groups_that_follow(fresh: None) -> None:
    first = _group()
    second = _group()
    try:
        reaper.track(first.pid)
        assert reaper._watcher is not None
        watcher = reaper._watcher[1]
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(10)
        reaper.track(second.pid)  # the write fails (no reader): a new watcher takes it
        assert reaper._watcher is not None and reaper._watcher[1] is not watcher
        _die()
        assert survivors([second.pid]) == []
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_the_watcher_outlives_the_signals_that_stop_ouro(fresh: None) -> None:
    """SIGINT (Ctrl-C reaches the terminal's whole group) or SIGTERM (a supervisor) must
    not stop the watcher before `ouro` is gone: it would have nothing left to clean."""
    group = _group()
    try:
        reaper.track(group.pid)
        assert reaper._watcher is not None
        watcher = reaper._watcher[1]
        for sig in (signal.SIGINT, signal.SIGTERM):
            watcher.send_signal(sig)
        time.sleep(0.2)  # a signal it did not ignore would have ended it by now
        assert watcher.poll() is None
        _die()
        assert survivors([group.pid]) == []
    finally:
        group.kill()
        group.wait()
