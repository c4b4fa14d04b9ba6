"""Named numeric parameters and route weights as genomes for the generic engine.

A parameters file is a JSON object: `{"name": value}` or `{"name": {"value": v, "min": a,
"max": b}}` (bounds optional). The candidate a fitness function sees is `{"name": value}`
for parameters and `{"weights": {"route": w}}` (weights summing to 1) for routing.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.evolve.fitness_fn import Fitness, FitnessFailed
from ouroboros.capabilities.evolve.vector import Vector, routing_weights
from ouroboros.kernel.errors import UsageError


@dataclass(frozen=True)
class Param:
    name: str
    value: float
    low: float = -math.inf
    high: float = math.inf

    @property
    def scale(self) -> float:
        if math.isfinite(self.low) and math.isfinite(self.high):
            return (self.high - self.low) / 10
        return abs(self.value) / 10 + 0.1


def parse_params(data: Any) -> tuple[Param, ...]:
    """Parameters from the parsed JSON document (the caller parses strictly)."""
    if not isinstance(data, dict) or not data:
        raise UsageError('parameters must be a non-empty JSON object {"name": value, ...}')
    out = []
    for name, spec in data.items():
        if isinstance(spec, dict):
            value, low, high = spec.get("value", math.nan), spec.get("min", -math.inf), \
                spec.get("max", math.inf)
        else:
            value, low, high = spec, -math.inf, math.inf
        if not (_number(value) and _number(low) and _number(high) and low <= value <= high):
            raise UsageError(f"parameter {name!r}: needs a number value within its min/max")
        out.append(Param(str(name), float(value), float(low), float(high)))
    check_names([p.name for p in out], "parameter")
    return tuple(out)


def check_names(names: Sequence[str], what: str) -> None:
    """Names a reviewer of the patch reads as they are: no control, bidi or invisible
    character (two routes both shown as "small" would split the traffic between them),
    none empty, no two the same after NFKC (full-width letters)."""
    seen: dict[str, str] = {}
    for name in names:
        if not name.strip():
            raise UsageError(f"a {what} name is empty")
        for ch in name:
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
                raise UsageError(
                    f"{what} {name!r} has {unicodedata.name(ch, 'a control character')} "
                    f"(U+{ord(ch):04X}): control, bidi and invisible characters hide or "
                    "reorder what a reviewer reads")
        key = unicodedata.normalize("NFKC", name)
        if key in seen:
            raise UsageError(f"{what}s {seen[key]!r} and {name!r} read as the same name")
        seen[key] = name


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class NamedProblem:
    """Vectors under the engine, scored by a user fitness on named candidates."""

    names: tuple[str, ...]
    lows: tuple[float, ...]
    highs: tuple[float, ...]
    scales: tuple[float, ...]
    fitness: Fitness
    routing: bool = False

    @classmethod
    def for_params(cls, params: Sequence[Param], fitness: Fitness) -> NamedProblem:
        return cls(tuple(p.name for p in params), tuple(p.low for p in params),
                   tuple(p.high for p in params), tuple(p.scale for p in params), fitness)

    @classmethod
    def for_routes(cls, routes: Sequence[str], fitness: Fitness) -> NamedProblem:
        n = len(routes)
        return cls(tuple(routes), (0.0,) * n, (1.0,) * n, (0.1,) * n, fitness, routing=True)

    def candidate(self, genome: Vector) -> dict[str, Any]:
        if self.routing:
            return {"weights": routing_weights(self.names, genome)}
        return dict(zip(self.names, genome, strict=True))

    def mutate(self, genome: Vector, rng: random.Random) -> tuple[Vector, str] | None:
        new = list(genome)
        if rng.random() < 0.5:
            i = rng.randrange(len(new))
            new[i] = self._clamp(i, new[i] + rng.gauss(0.0, self.scales[i]))
            return tuple(new), f"Gauss[{self.names[i]}]"
        return tuple(self._clamp(i, x + rng.gauss(0.0, self.scales[i] / 2))
                     for i, x in enumerate(new)), "GaussAll"

    def _clamp(self, i: int, value: float) -> float:
        return min(self.highs[i], max(self.lows[i], value))

    def crossover(self, a: Vector, b: Vector, rng: random.Random) -> Vector:
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))

    def evaluate(self, genome: Vector) -> float:
        try:
            return max(0.0, self.fitness(self.candidate(genome)))
        except FitnessFailed:
            return 0.0

    def start_score(self, genome: Vector) -> float:
        """The starting point must score: a broken fitness stops the run here."""
        try:
            score = self.fitness(self.candidate(genome))
        except FitnessFailed as exc:
            raise UsageError(f"the fitness function cannot score the starting candidate: {exc}",
                             "run it by hand on the JSON candidate to see why") from exc
        if score < 0:  # every candidate would count as 0: a run could only claim progress
            raise UsageError(f"the fitness function scored the starting candidate {score:g}: "
                             "scores are 0 or more, higher is better (a negative one counts "
                             "as 0)", "shift it, e.g. print 100 - loss instead of -loss")
        return score

