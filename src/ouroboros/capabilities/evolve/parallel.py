"""Generating and scoring a generation's candidates, in this process or on a pool.

A worker receives the parent, the best-so-far and a range of candidate indices; it
*generates* each candidate itself (candidate i of generation g draws from its own
`random.Random(f"{seed}:{g}:{i}")`), scores it, and sends back only the best of its
range. Inter-process traffic is one small message per worker per generation, never one
per candidate, and since a candidate depends only on (seed, generation, index), where
it was made cannot change which one wins, nor on which executor (local, a process pool,
Ray). The problem travels with each range (a few KB for a FLUX program and its cases).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ouroboros.capabilities.evolve.executor import Executor, LocalExecutor, make_executor

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


def _evaluate_chunk(args: tuple[Any, Sequence[Any]]) -> list[float]:
    problem, genomes = args
    return [float(problem.evaluate(g)) for g in genomes]


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
    return generate_range(*args)


class Evaluator(Generic[G]):
    """Scores genomes and whole generations in-process (workers=1), on a process pool, or
    on any executor (`executor.py`: a pool, Ray). The problem travels with each batch, so
    it must be picklable; a batch is a range of a generation, never one candidate."""

    def __init__(self, problem: Scorer[G], workers: int = 1,
                 executor: Executor | None = None) -> None:
        self.problem = problem
        self._executor = executor
        self._owned = executor is None  # a given executor is its caller's to close
        self.workers = executor.workers if executor is not None else max(1, workers)
        # An executor that was asked for (Ray with one CPU, say) gets every batch.
        self._parallel = self.workers > 1 or not isinstance(executor, LocalExecutor | None)
        self.evaluations = 0

    def __enter__(self) -> Evaluator[G]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker processes now (before any thread, e.g. a progress bar, runs)."""
        if self._parallel:
            self._get_executor()

    def _get_executor(self) -> Executor:
        if self._executor is None:
            self._executor = make_executor("process", self.workers)
        return self._executor

    def evaluate(self, genomes: Sequence[G]) -> list[float]:
        self.evaluations += len(genomes)
        if not self._parallel or len(genomes) < 2:
            return [float(self.problem.evaluate(g)) for g in genomes]
        size = max(1, -(-len(genomes) // (self.workers * 4)))
        chunks = [(self.problem, genomes[i:i + size]) for i in range(0, len(genomes), size)]
        return [f for chunk in self._get_executor().map(_evaluate_chunk, chunks) for f in chunk]

    def generation(self, parent: G, best: G, seed: int, generation: int, count: int,
                   crossover_rate: float) -> tuple[Pick[G] | None, int]:
        """Generate and score `count` candidates; the fittest (earliest on ties) and how
        many were made."""
        args = (parent, best, seed, generation)
        if not self._parallel or count < 2:
            top, made = generate_range(self.problem, *args, range(count), crossover_rate)
            self.evaluations += made
            return top, made
        step = -(-count // self.workers)
        tasks = [(self.problem, *args, range(lo, min(count, lo + step)), crossover_rate)
                 for lo in range(0, count, step)]
        results = self._get_executor().map(_generate, tasks)
        made = sum(m for _, m in results)
        self.evaluations += made
        picks = [p for p, _ in results if p is not None]
        if not picks:
            return None, made
        return max(picks, key=lambda p: (p.fitness, -p.index)), made

    def close(self) -> None:
        if self._owned and self._executor is not None:
            self._executor.close()
            self._executor = None
