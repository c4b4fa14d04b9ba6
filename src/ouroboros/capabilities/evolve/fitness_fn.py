"""User fitness functions for `ouro evolve params|routing`: a command or `module:function`.

Both receive the candidate as a JSON object and return one number, higher is better:

- a **command** (`--fitness "python3 score.py"`) gets the candidate as JSON on stdin and
  prints the score as the last line of stdout; it runs without a shell, with a timeout,
  in a session of its own whose processes are killed when it exits or times out (none
  outlives the scoring, nor a killed `ouro`: `reaper.py`), and at most 1 MiB of its
  stdout is read;
- a **function** (`--fitness mypkg.scoring:score`) is imported and called with the
  candidate as a dict, under the same timeout (a SIGALRM interval timer in the main
  thread of the process that scores: `ouro` itself or a worker, Ray's included; an
  asynchronous exception from a timer thread when called from another thread; a call
  blocked inside native code is interrupted when it returns to Python).

A candidate that the function cannot score (a crash, a non-number, a timeout, NaN) scores
0, and the number of such failures is kept, so a search does not stall on one bad point;
the starting candidate must score, or the run stops with a usage error. Both forms are
picklable, so candidates can be scored in worker processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import math
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from ouroboros.capabilities.evolve.executor import can_die_with_parent, die_with_parent
from ouroboros.capabilities.evolve.reaper import track, untrack
from ouroboros.kernel.errors import UsageError

_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
TIMEOUT_S = 30.0
#: A score is one line: a command printing more than this on stdout is stopped (it was
#: read into memory whole, for up to TIMEOUT_S); of stderr only the tail is kept.
MAX_STDOUT = 1 << 20
MAX_STDERR = 4096


class FitnessFailed(Exception):
    """The fitness function could not score a candidate; the message says why."""


class _TimedOut(BaseException):
    """Raised into a `module:function` fitness at its deadline. Not an ``Exception``:
    a function that swallows exceptions in a loop must not swallow its own timeout."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise `_TimedOut` into the code in the block after ``seconds``: a SIGALRM timer in
    the main thread, an asynchronous exception from a timer thread elsewhere (signals are
    delivered to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        with _thread_deadline(seconds):
            yield
        return

    def fire(signum: int, frame: object) -> None:
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:  # a timer firing in here still lands inside the caller's `except _TimedOut`
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _thread_deadline(seconds: float) -> Iterator[None]:
    """`_deadline` for a thread other than the main one. CPython raises the exception at
    the thread's next bytecode boundary, as the signal handler would run: a call blocked
    in native code is interrupted when it returns to Python."""
    target = ctypes.c_ulong(threading.get_ident())
    guard = threading.Lock()
    state = {"open": True, "fired": False}

    def fire() -> None:
        with guard:  # never after the block has ended: it would land in the caller
            if state["open"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_TimedOut))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:  # a pending exception raised in here still lands in the caller's `except`
        timer.cancel()
        with guard:
            state["open"] = False
            if state["fired"]:  # set but not yet raised: withdrawn, the block is over
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)


@dataclass(frozen=True)
class FitnessCommand:
    argv: tuple[str, ...]
    timeout_s: float = TIMEOUT_S

    def __call__(self, candidate: Mapping[str, Any]) -> float:
        parent = os.getpid()  # a killed `ouro` (or worker) leaves no command running
        preexec = (lambda: die_with_parent(parent)) if can_die_with_parent() else None
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=preexec)
        except OSError as exc:
            raise FitnessFailed(f"cannot run {self.argv[0]}: {exc.strerror}") from exc
        try:
            track(proc.pid)  # its background children die with this process tree too
            out, err = _collect(proc, json.dumps(candidate).encode(), self.timeout_s)
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            raise FitnessFailed(f"exit {proc.returncode}: {_text(err).strip()[-200:]}")
        lines = _text(out).strip().splitlines()
        return _number(lines[-1] if lines else "")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # the command need not read its stdin
        pipe.write(data)
    with contextlib.suppress(OSError):
        pipe.close()


def _collect(proc: subprocess.Popen[bytes], data: bytes, timeout_s: float,
             ) -> tuple[bytes, bytes]:
    """The command's stdout (at most MAX_STDOUT) and the tail of its stderr, read until it
    exits and its pipes fall quiet: a background child that keeps them open is not
    waited for (its process group is killed next)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise FitnessFailed(f"timed out after {timeout_s:g} s")
            ready = selector.select(min(left, 0.1))
            if not ready and proc.poll() is not None:
                break
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if key.data is err and len(err) > MAX_STDERR:
                    del err[:-MAX_STDERR]
            if len(out) > MAX_STDOUT:
                raise FitnessFailed(f"printed more than {MAX_STDOUT >> 20} MiB on stdout")
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as exc:  # it closed its pipes but runs on
        raise FitnessFailed(f"timed out after {timeout_s:g} s") from exc
    return bytes(out), bytes(err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and anything it started (it ran in a session of its own)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        untrack(proc.pid)  # before the wait: the leader unreaped, the group id is not reused
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@dataclass(frozen=True)
class FitnessFunction:
    spec: str  # module:function
    timeout_s: float = TIMEOUT_S

    def __call__(self, candidate: Mapping[str, Any]) -> float:
        module, name = self.spec.split(":")
        # Its prints go to stderr: stdout is the command's own (`--json`: one document).
        with contextlib.redirect_stdout(sys.stderr):
            try:  # importing runs the module: a SyntaxError, or sys.exit at import time
                fn = getattr(importlib.import_module(module), name)
            except (Exception, SystemExit) as exc:
                raise FitnessFailed(f"cannot import {self.spec}: {type(exc).__name__}: "
                                    f"{str(exc)[:200]}") from exc
            return self._score(fn, candidate)

    def _score(self, fn: Callable[[dict[str, Any]], Any], candidate: Mapping[str, Any]
               ) -> float:
        try:
            with _deadline(self.timeout_s):
                value = fn(dict(candidate))
            return _number(value)
        except _TimedOut:
            raise FitnessFailed(f"timed out after {self.timeout_s:g} s") from None
        except FitnessFailed:
            raise
        except (Exception, SystemExit) as exc:  # the user's function failed (or called
            # sys.exit, which ended `ouro` itself, exit 0 and no output): it scores 0
            raise FitnessFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise FitnessFailed(f"not a number: {str(value)[:80]!r}") from exc
    if not math.isfinite(number):
        raise FitnessFailed(f"not a finite number: {number}")
    return number


Fitness = Callable[[Mapping[str, Any]], float]


def parse_fitness(text: str, timeout_s: float = TIMEOUT_S) -> FitnessCommand | FitnessFunction:
    """`module:function` when it looks like one, else a command line (no shell); either
    is stopped after ``timeout_s`` seconds per candidate."""
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise UsageError(f"--fitness-timeout {timeout_s:g} is not a positive number of seconds",
                         "e.g. --fitness-timeout 30")
    text = text.strip()
    if not text:
        raise UsageError("--fitness is empty", "give a command or module:function")
    if _FUNCTION.match(text):
        return FitnessFunction(text, timeout_s)
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"--fitness is not a valid command line: {exc}") from exc
    return FitnessCommand(argv, timeout_s)
