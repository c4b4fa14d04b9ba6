"""Generating and scoring a generation's candidates, in this process or on a pool.

A worker receives the parent, the best-so-far and a range of candidate indices; it
*generates* each candidate itself (candidate i of generation g draws from its own
`random.Random(f"{seed}:{g}:{i}")`), scores it, and sends back only the best of its
range. Inter-process traffic is one small message per worker per generation, never one
per candidate, and since a candidate depends only on (seed, generation, index), where
it was made cannot change which one wins. The problem is sent to each worker once
(pool initializer).
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

G = TypeVar("G")
G_contra = TypeVar("G_contra", contravariant=True)


class Scorer(Protocol[G_contra]):
    def evaluate(self, genome: G_contra) -> float: ...


@dataclass(frozen=True)
class Pick(Generic[G]):
    """The best candidate of a range: its index in the generation, fitness, genome, label."""

    index: int
    fitness: float
    genome: G
    label: str


_WORKER_PROBLEM: Any = None


def _init(problem: Any) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem


def _evaluate(genome: Any) -> float:
    return float(_WORKER_PROBLEM.evaluate(genome))


def generate_range(problem: Any, parent: Any, best: Any, seed: int, generation: int,
                   indices: range, crossover_rate: float) -> tuple[Pick[Any] | None, int]:
    """Make and score candidates `indices` of a generation; (the best, how many made)."""
    top: Pick[Any] | None = None
    made = 0
    for i in indices:
        rng = random.Random(f"{seed}:{generation}:{i}")
        start, label = parent, ""
        if rng.random() < crossover_rate:
            start, label = problem.crossover(parent, best, rng), "Breed+"
        mutated = problem.mutate(start, rng)
        if mutated is not None:
            genome, label = mutated[0], label + mutated[1]
        elif label:
            genome, label = start, "Breed"
        else:
            continue
        fitness = float(problem.evaluate(genome))
        made += 1
        if top is None or fitness > top.fitness:
            top = Pick(i, fitness, genome, label)
    return top, made


def _generate(args: tuple[Any, ...]) -> tuple[Pick[Any] | None, int]:
    return generate_range(_WORKER_PROBLEM, *args)


class Evaluator(Generic[G]):
    """Scores genomes and whole generations in-process (workers=1) or on a process pool."""

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

    def generation(self, parent: G, best: G, seed: int, generation: int, count: int,
                   crossover_rate: float) -> tuple[Pick[G] | None, int]:
        """Generate and score `count` candidates; the fittest (earliest on ties) and how
        many were made."""
        args = (parent, best, seed, generation)
        if self.workers == 1 or count < 2:
            top, made = generate_range(self.problem, *args, range(count), crossover_rate)
            self.evaluations += made
            return top, made
        step = -(-count // self.workers)
        tasks = [(*args, range(lo, min(count, lo + step)), crossover_rate)
                 for lo in range(0, count, step)]
        results = self._get_pool().map(_generate, tasks, chunksize=1)
        made = sum(m for _, m in results)
        self.evaluations += made
        picks = [p for p, _ in results if p is not None]
        if not picks:
            return None, made
        return max(picks, key=lambda p: (p.fitness, -p.index)), made

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
