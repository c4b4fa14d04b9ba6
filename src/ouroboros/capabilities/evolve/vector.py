"""Numeric vectors as genomes: the engine tuning parameters, e.g. routing weights.

The fitness function is the user's; it must be a module-level callable (picklable) for
parallel evaluation. `routing_weights` turns a vector into the normalised weights a
`routing` patch carries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Vector = tuple[float, ...]


@dataclass(frozen=True)
class VectorProblem:
    fitness: Callable[[Vector], float]
    low: float = 0.0
    high: float = 1.0
    sigma: float = 0.1

    def _clamp(self, value: float) -> float:
        return min(self.high, max(self.low, value))

    def mutate(self, genome: Vector, rng: random.Random) -> tuple[Vector, str] | None:
        if not genome:
            return None
        if rng.random() < 0.5:
            i = rng.randrange(len(genome))
            new = list(genome)
            new[i] = self._clamp(new[i] + rng.gauss(0.0, self.sigma))
            return tuple(new), f"Gauss[{i}]"
        return tuple(self._clamp(x + rng.gauss(0.0, self.sigma / 2)) for x in genome), "GaussAll"

    def crossover(self, a: Vector, b: Vector, rng: random.Random) -> Vector:
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))

    def evaluate(self, genome: Vector) -> float:
        value = float(self.fitness(genome))
        return value if math.isfinite(value) and value > 0 else 0.0


def routing_weights(routes: Sequence[str], vector: Vector) -> dict[str, float]:
    """Normalise a non-negative vector into route weights summing to 1 (6 decimals)."""
    total = sum(max(0.0, v) for v in vector) or 1.0
    return {r: round(max(0.0, v) / total, 6) for r, v in zip(routes, vector, strict=True)}


# The example the docs, demo and tests use: three model routes with a quality and a
# cost; the user wants quality but pays for cost and for spreading traffic thin.
EXAMPLE_ROUTES = ("small", "medium", "large")
_QUALITY = (0.62, 0.80, 0.93)
_COST = (0.1, 0.35, 1.0)


def example_fitness(vector: Vector) -> float:
    total = sum(vector)
    if total <= 0:
        return 0.0
    share = [v / total for v in vector]
    quality = sum(s * q for s, q in zip(share, _QUALITY, strict=True))
    cost = sum(s * c for s, c in zip(share, _COST, strict=True))
    return max(0.0, quality - 0.45 * cost)


def example_routing_fitness(candidate: dict[str, object]) -> float:
    """`example_fitness` for `ouro evolve routing --fitness module:function`: the
    candidate is {"weights": {"small": w, "medium": w, "large": w}}."""
    weights = candidate["weights"]
    assert isinstance(weights, dict)
    return example_fitness(tuple(float(weights[r]) for r in EXAMPLE_ROUTES))
