"""The generic evolution engine: propose, score, compete, accept or roll back.

Anything with a `Problem` (mutate, crossover, evaluate) evolves here: FLUX programs,
numeric vectors, and whatever else a capability defines. One generation:

1. trust gate: no self-modification while `trust < policy.min_trust`
   (`TrustGateClosed`, and nothing changes);
2. propose `policy.population` candidates from the current genome (a crossover with
   the best-so-far first, with probability `policy.crossover_rate`); candidate i of
   generation g draws from its own seeded `random.Random(f"{seed}:{g}:{i}")`;
3. generate and score them where they are made (workers take whole ranges of a
   generation, see `parallel.py`) and compete: the fittest wins, ties go to the
   earliest;
4. apply the winner over a snapshot; if its fitness is below
   `policy.rollback_threshold x` the current fitness, roll back to the snapshot.

Every generation leaves one `EvolutionRecord`; `on_accept` runs once per accepted
generation (the CLI logs one ledger summary there, never one per candidate).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ouroboros.capabilities import tracing
from ouroboros.capabilities.evolve.executor import Executor, default_workers
from ouroboros.capabilities.evolve.parallel import Evaluator
from ouroboros.capabilities.evolve.trend import Trend, classify

G = TypeVar("G")


class Problem(Protocol[G]):
    """What the engine needs to know about a genome type."""

    def mutate(self, genome: G, rng: random.Random) -> tuple[G, str] | None:
        """A variant and a label naming the mutation, or None if none applies."""
        ...

    def crossover(self, a: G, b: G, rng: random.Random) -> G:
        ...

    def evaluate(self, genome: G) -> float:
        """Fitness, >= 0, higher is better; must be pure (it may run in another process)."""
        ...


class TrustGateClosed(RuntimeError):
    """Self-modification was requested while trust is below the policy's threshold."""


@dataclass(frozen=True)
class EvolutionPolicy:
    population: int = 8
    rollback_threshold: float = 0.95
    min_trust: float = 0.5
    crossover_rate: float = 0.1
    trend_window: int = 10
    trend_epsilon: float = 0.01

    def __post_init__(self) -> None:
        if self.population < 1:
            raise ValueError("population must be at least 1")
        if not 0 < self.rollback_threshold <= 1:
            raise ValueError("rollback_threshold must be in (0, 1]")


@dataclass(frozen=True)
class EvolutionRecord:
    generation: int
    mutation: str
    fitness_before: float
    fitness_after: float
    accepted: bool
    evaluations: int

    @property
    def kept_fitness(self) -> float:
        return self.fitness_after if self.accepted else self.fitness_before

    def to_json(self) -> dict[str, object]:
        return {"generation": self.generation, "mutation": self.mutation,
                "fitness_before": self.fitness_before, "fitness_after": self.fitness_after,
                "accepted": self.accepted, "evaluations": self.evaluations}


@dataclass
class Snapshot(Generic[G]):
    genome: G
    fitness: float
    generation: int


@dataclass
class Evolver(Generic[G]):
    problem: Problem[G]
    genome: G
    policy: EvolutionPolicy = field(default_factory=EvolutionPolicy)
    seed: int = 0
    trust: float = 1.0
    workers: int | None = 1  # None: chosen from the population (executor.default_workers)
    on_accept: Callable[[EvolutionRecord, G], None] | None = None
    # Where generations are scored (a process pool, Ray); the caller closes it. None: a
    # process pool of `workers` owned by this evolver (in-process for one worker).
    executor: Executor | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if self.workers is None:
            self.workers = default_workers(self.policy.population)
        self.evaluator: Evaluator[G] = Evaluator(self.problem, self.workers, self.executor)
        self.evaluator.start()
        self.fitness = self.evaluator.evaluate([self.genome])[0]
        self.generation = 0
        self.history: list[EvolutionRecord] = []
        self.snapshots: list[Snapshot[G]] = []
        self.best = Snapshot(self.genome, self.fitness, 0)

    def __enter__(self) -> Evolver[G]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.evaluator.close()

    @property
    def evaluations(self) -> int:
        return self.evaluator.evaluations

    def propose(self) -> list[tuple[G, str]]:
        candidates: list[tuple[G, str]] = []
        for _ in range(self.policy.population):
            parent, label = self.genome, ""
            if self.rng.random() < self.policy.crossover_rate:
                parent = self.problem.crossover(self.genome, self.best.genome, self.rng)
                label = "Breed+"
            mutated = self.problem.mutate(parent, self.rng)
            if mutated is not None:
                candidates.append((mutated[0], label + mutated[1]))
            elif label:
                candidates.append((parent, "Breed"))
        return candidates

    def compete(self, candidates: Sequence[G]) -> tuple[int, float]:
        """Score every candidate; (index, fitness) of the fittest, earliest on ties."""
        scores = self.evaluator.evaluate(list(candidates))
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return best, scores[best]

    def apply(self, genome: G, fitness: float) -> None:
        self.snapshots.append(Snapshot(self.genome, self.fitness, self.generation))
        self.genome, self.fitness = genome, fitness

    def rollback(self) -> Snapshot[G]:
        """Restore the genome the last `apply` replaced."""
        snapshot = self.snapshots.pop()
        self.genome, self.fitness = snapshot.genome, snapshot.fitness
        return snapshot

    def step(self) -> EvolutionRecord:
        if self.trust < self.policy.min_trust:
            raise TrustGateClosed(
                f"trust {self.trust:.2f} is below the policy's {self.policy.min_trust:.2f}: "
                "no self-modification until trust is restored")
        self.generation += 1
        before = self.fitness
        pick, made = self.evaluator.generation(self.genome, self.best.genome, self.seed,
                                               self.generation, self.policy.population,
                                               self.policy.crossover_rate)
        if pick is None:
            record = EvolutionRecord(self.generation, "none", before, before, False, 0)
            self.history.append(record)
            return record
        genome, fitness, label = pick.genome, pick.fitness, pick.label
        self.apply(genome, fitness)
        accepted = fitness > 0 and fitness >= self.policy.rollback_threshold * before
        if not accepted:
            self.rollback()
        record = EvolutionRecord(self.generation, label, before, fitness, accepted, made)
        self.history.append(record)
        if accepted:
            if fitness > self.best.fitness:
                self.best = Snapshot(genome, fitness, self.generation)
            if self.on_accept is not None:
                self.on_accept(record, genome)
        return record

    def run(self, generations: int,
            progress: Callable[[EvolutionRecord], None] | None = None,
            what: str = "run") -> Snapshot[G]:
        # One OpenTelemetry span per run (a no-op until an interface installs a provider).
        with tracing.span("ouroboros.evolve", "ouro.evolve", attributes={
                "ouro.evolve.what": what, "ouro.evolve.generations": generations}) as span:
            for _ in range(generations):
                record = self.step()
                if progress is not None:
                    progress(record)
            span.set_attribute("ouro.evolve.best_fitness", float(self.best.fitness))
        return self.best

    def trend(self) -> Trend:
        return classify([r.kept_fitness for r in self.history],
                        window=self.policy.trend_window, epsilon=self.policy.trend_epsilon)
