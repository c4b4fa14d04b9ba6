"""Evaluating candidates on several cores.

Fitness functions are pure, so where a candidate is scored cannot change its score:
the pool only changes how fast a generation finishes, never which candidate wins.
The problem is sent to each worker once (pool initializer); per generation only the
genomes travel.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

G = TypeVar("G")
G_contra = TypeVar("G_contra", contravariant=True)


class Scorer(Protocol[G_contra]):
    def evaluate(self, genome: G_contra) -> float: ...


_WORKER_PROBLEM: Any = None


def _init(problem: Any) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem


def _evaluate(genome: Any) -> float:
    return float(_WORKER_PROBLEM.evaluate(genome))


class Evaluator(Generic[G]):
    """Scores batches of genomes in-process (workers=1) or on a process pool."""

    def __init__(self, problem: Scorer[G], workers: int = 1) -> None:
        self.problem = problem
        self.workers = max(1, workers)
        self._pool: Any = None
        self.evaluations = 0

    def __enter__(self) -> Evaluator[G]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker processes now (before any thread, e.g. a progress bar, runs)."""
        if self.workers > 1:
            self._get_pool()

    def _get_pool(self) -> Any:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init, initargs=(self.problem,))
        return self._pool

    def evaluate(self, genomes: Sequence[G]) -> list[float]:
        self.evaluations += len(genomes)
        if self.workers == 1 or len(genomes) < 2:
            return [float(self.problem.evaluate(g)) for g in genomes]
        chunk = max(1, len(genomes) // (self.workers * 4))
        return list(self._get_pool().map(_evaluate, genomes, chunksize=chunk))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
