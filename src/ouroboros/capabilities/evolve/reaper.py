"""Kill what a fitness command left running once the process that ran it is gone.

A fitness command runs in a process group of its own and dies with `ouro` (a parent-death
signal), but what it started in the background does not: killed mid-run, `ouro` left
those processes running, reparented to init, and no one knew their group any more. A
small watcher process, started on first use and holding the read end of a pipe, learns
each group (``+PGID`` when a command starts, ``-PGID`` once its group was killed); when
the last writer of the pipe is gone (`ouro` and the workers it forked, however they
ended) it kills every group still named. It runs in a session of its own and ignores
SIGINT/SIGTERM, so the signal that stops `ouro` does not stop it first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

_WATCH = """
import os, signal, sys
groups = set()
for line in sys.stdin.buffer:
    try:
        pgid = int(line[1:])
    except ValueError:
        continue
    (groups.add if line[:1] == b"+" else groups.discard)(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
#: (pid of the process that started it, the watcher, the pipe's write end). A forked
#: worker writes to its parent's watcher: the fd is inherited, and the pipe stays open
#: while any of them lives.
_watcher: tuple[int, subprocess.Popen[bytes], int] | None = None


def _ignore_stops() -> None:
    # in the child before exec: an ignored signal stays ignored across it, so there is no
    # moment at start-up when the watcher could still be stopped
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start() -> int:
    global _watcher
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCH], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_ignore_stops)
    assert proc.stdin is not None
    fd = os.dup(proc.stdin.fileno())  # a raw fd: no buffer a fork could copy half-written
    proc.stdin.close()
    _watcher = (os.getpid(), proc, fd)
    return fd


def _send(line: bytes) -> None:
    with _lock:
        fd = _start() if _watcher is None else _watcher[2]
        try:
            os.write(fd, line)  # one short write on a pipe: atomic among writers
        except OSError:  # the watcher was killed: start another for the groups from now on
            with contextlib.suppress(OSError):
                os.close(fd)
            os.write(_start(), line)


def track(pgid: int) -> None:
    """A command's process group started: kill it if this process tree dies first."""
    _send(b"+%d\n" % pgid)


def untrack(pgid: int) -> None:
    """The group was killed (call it before the leader is reaped: its id cannot be reused
    by another group while the leader is unreaped)."""
    _send(b"-%d\n" % pgid)
