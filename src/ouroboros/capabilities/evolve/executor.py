"""Where batches of search work run: in this process, on a pool of processes, or on Ray.

The engines hand an executor *whole batches* (an island's epoch of a few hundred steps,
a chunk of a generation's candidates that the worker generates and scores itself, or one
tool's test cases), never one candidate at a time, so inter-process traffic is one
message per batch. The functions passed to `map` are module-level and their arguments
picklable, so every backend implements the same small interface:

    map(fn, items) -> [fn(item) for item in items], in order
    close()

Results never depend on the executor: every batch carries its own seeded state. The Ray
backend (`ray_backend.py`) imports Ray only when it is asked for.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

from ouroboros.kernel.errors import OuroError, UsageError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "process", "ray")
BATCH_PER_WORKER = 32  # below this many candidates per worker, IPC costs more than it saves


class ExecutorFailed(OuroError):
    """A worker died or the cluster went away mid-batch (exit 1); nothing was kept."""


class Executor(Protocol):
    workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs every batch in this process, in order."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        pass


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def can_die_with_parent() -> bool:
    """Whether `die_with_parent` works here (Linux); looks the call up in this process."""
    return _prctl() is not None


def die_with_parent(parent: int) -> None:
    """Have Linux SIGKILL this process when `parent` dies (kill -9, SIGTERM): a worker
    or fitness command would otherwise be reparented to init and go on scoring a
    generation no one waits for. Call `_prctl()` in the parent first: after a fork only
    the call itself runs."""
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _worker_init(parent: int) -> None:
    # A pool forked from a process that runs a Ray driver inherits Ray's SIGTERM handler,
    # which prints a stack dump when the pool is torn down; a worker needs none of it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)


class ProcessExecutor:
    """A pool of worker processes (fork where the platform has it), started lazily.

    A `concurrent.futures` pool, not a `multiprocessing.Pool`: when a worker dies (a
    fitness function calling `os._exit`, a crash in native code) the latter replaces it
    and waits for the batch it held for ever; this one reports the pool broken."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the workers now (before any thread, e.g. a progress bar, runs)."""
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            can_die_with_parent()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=_worker_init, initargs=(os.getpid(),))
            self._pool.submit(int).result()  # with fork, every worker starts on this one

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) < 2:
            return [fn(item) for item in items]
        self.start()
        assert self._pool is not None
        try:
            return list(self._pool.map(fn, items, chunksize=1))
        except BrokenProcessPool as exc:
            self.close()
            raise ExecutorFailed("a worker process died mid-batch (a fitness function that "
                                 "exits the process or crashes?): nothing was kept",
                                 "run the fitness by hand on one candidate") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_workers(batch: int, cpus: int | None = None) -> int:
    """One worker per `BATCH_PER_WORKER` candidates in a batch, at most one per core."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, batch // BATCH_PER_WORKER))


def make_executor(kind: str = "process", workers: int = 1, *,
                  ray_address: str | None = None) -> Executor:
    """`local`; `process` with `workers` processes (1 worker = local); or `ray` with
    `workers` tasks in flight, on a local Ray started here or on the cluster at
    `ray_address` (default `$OURO_RAY_ADDRESS`).

    Raises:
        UsageError: an unknown kind, or `ray` without Ray installed (exit 2).
    """
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}", f"use one of: {', '.join(EXECUTORS)}")
    if kind == "ray":
        from ouroboros.capabilities.evolve.ray_backend import RayExecutor

        return RayExecutor(workers, address=ray_address)
    if kind == "local" or workers <= 1:
        return LocalExecutor()
    executor = ProcessExecutor(workers)
    executor.start()
    return executor
