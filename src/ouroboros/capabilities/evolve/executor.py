"""Where batches of search work run: in this process, or on a pool of processes.

The engines hand an executor *whole batches* (an island's epoch of a few hundred steps,
or a chunk of a generation's candidates that the worker generates and scores itself),
never one candidate at a time, so inter-process traffic is one message per batch. The
functions passed to `map` are module-level and their arguments picklable, so another
backend (a Ray cluster, say) only has to implement this small interface:

    map(fn, items) -> [fn(item) for item in items], in order
    close()

Results never depend on the executor: every batch carries its own seeded state.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from ouroboros.kernel.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "process")
BATCH_PER_WORKER = 32  # below this many candidates per worker, IPC costs more than it saves


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


class ProcessExecutor:
    """A pool of worker processes (fork where the platform has it), started lazily."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: Any = None

    def start(self) -> None:
        """Start the workers now (before any thread, e.g. a progress bar, runs)."""
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ctx.Pool(self.workers)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) < 2:
            return [fn(item) for item in items]
        self.start()
        return list(self._pool.map(fn, items, chunksize=1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


def default_workers(batch: int, cpus: int | None = None) -> int:
    """One worker per `BATCH_PER_WORKER` candidates in a batch, at most one per core."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, batch // BATCH_PER_WORKER))


def make_executor(kind: str = "process", workers: int = 1) -> Executor:
    """`local`, or `process` with `workers` processes (1 worker = local)."""
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}", f"use one of: {', '.join(EXECUTORS)}")
    if kind == "local" or workers <= 1:
        return LocalExecutor()
    executor = ProcessExecutor(workers)
    executor.start()
    return executor
