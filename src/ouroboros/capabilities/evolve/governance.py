"""Evolved parameters under the kernel: tuned routing weights become a `routing` patch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, EvolutionRecord, Evolver
from ouroboros.capabilities.evolve.vector import Vector, VectorProblem, routing_weights
from ouroboros.kernel import Runtime, SubmitOutcome


def tune_routing(routes: Sequence[str], fitness: Callable[[Vector], float], *,
                 generations: int = 60, seed: int = 0, workers: int = 1,
                 policy: EvolutionPolicy | None = None,
                 on_accept: Callable[[EvolutionRecord, Vector], None] | None = None,
                 ) -> tuple[dict[str, float], float, list[EvolutionRecord]]:
    """Evolve route weights from a uniform start; returns (weights, fitness, history)."""
    start = tuple(1.0 / len(routes) for _ in routes)
    problem = VectorProblem(fitness)
    with Evolver(problem, start, policy or EvolutionPolicy(population=12), seed=seed,
                 workers=workers, on_accept=on_accept) as evolver:
        best = evolver.run(generations)
        return routing_weights(routes, best.genome), best.fitness, evolver.history


def submit_routing(rt: Runtime, target: str, weights: Mapping[str, float], fitness: float,
                   reasoning: str, base: str | None = None) -> SubmitOutcome:
    """Propose the weights as a `routing` patch through the kernel (on `base`, the hash
    of the value the run started from, if given: a change since makes it stale)."""
    return rt.propose_and_submit(
        type="routing", target=target, value={"weights": dict(weights), "fitness": fitness},
        reasoning=reasoning, author="evolve", keys=["runtime"], base=base,
    )
