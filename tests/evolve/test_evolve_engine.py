"""The generic engine: determinism, compete, rollback threshold, trust gating, records."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ouroboros.capabilities.evolve.engine import (
    EvolutionPolicy,
    EvolutionRecord,
    Evolver,
    TrustGateClosed,
)
from ouroboros.capabilities.evolve.trend import Trend, classify
from ouroboros.capabilities.evolve.vector import VectorProblem, example_fitness


@dataclass(frozen=True)
class Counter:
    """Genome: an int; fitness: the int itself; mutation adds `step`."""

    step: int = 1

    def mutate(self, genome: int, rng: random.Random) -> tuple[int, str]:
        return genome + self.step * rng.choice((1, 2)), "add"

    def crossover(self, a: int, b: int, rng: random.Random) -> int:
        return max(a, b)

    def evaluate(self, genome: int) -> float:
        return float(max(genome, 0))


def sphere(v: tuple[float, ...]) -> float:
    return 1.0 / (1.0 + sum((x - 0.3) ** 2 for x in v))


def run_vector(seed: int, workers: int) -> tuple[tuple[float, ...], list[EvolutionRecord]]:
    with Evolver(VectorProblem(sphere), (0.9, 0.1, 0.5), EvolutionPolicy(population=6),
                 seed=seed, workers=workers) as evolver:
        best = evolver.run(15)
        return best.genome, evolver.history


def test_same_seed_same_run_bit_for_bit() -> None:
    assert run_vector(5, 1) == run_vector(5, 1)
    assert run_vector(5, 1) != run_vector(6, 1)


def test_parallel_evaluation_changes_nothing_but_speed() -> None:
    assert run_vector(5, 2) == run_vector(5, 1)


def test_compete_keeps_the_best_and_the_earliest_on_ties() -> None:
    with Evolver(Counter(), 10) as evolver:
        assert evolver.compete([3, 9, 9, 1]) == (1, 9.0)
        assert evolver.evaluations == 5  # the start plus four


def test_worse_candidates_are_rolled_back() -> None:
    with Evolver(Counter(step=-1), 10, EvolutionPolicy(rollback_threshold=0.95)) as evolver:
        record = evolver.step()
    assert not record.accepted
    assert record.fitness_before == 10.0 and record.fitness_after == 9.0
    assert evolver.genome == 10 and evolver.fitness == 10.0
    assert evolver.snapshots == []


def test_a_lower_threshold_accepts_a_small_loss() -> None:
    with Evolver(Counter(step=-1), 100, EvolutionPolicy(rollback_threshold=0.9),
                 seed=1) as evolver:
        record = evolver.step()
    assert record.accepted and evolver.genome == 99
    assert evolver.best.genome == 100  # best-so-far is never lost


def test_rollback_restores_the_snapshot() -> None:
    with Evolver(Counter(), 1) as evolver:
        evolver.apply(50, 50.0)
        assert evolver.genome == 50
        snapshot = evolver.rollback()
    assert (snapshot.genome, evolver.genome, evolver.fitness) == (1, 1, 1.0)


def test_trust_gate_blocks_self_modification() -> None:
    with Evolver(Counter(), 1, EvolutionPolicy(min_trust=0.7), trust=0.6) as evolver:
        with pytest.raises(TrustGateClosed, match=r"trust 0.60 is below the policy's 0.70"):
            evolver.step()
        assert (evolver.genome, evolver.generation, evolver.history) == (1, 0, [])
        evolver.trust = 0.8
        assert evolver.step().accepted


def test_one_callback_per_accepted_generation() -> None:
    seen: list[tuple[int, int]] = []
    with Evolver(Counter(), 1, on_accept=lambda r, g: seen.append((r.generation, g))) as ev:
        ev.run(5)
    assert [g for g, _ in seen] == [r.generation for r in ev.history if r.accepted]
    assert len(seen) == 5
    assert ev.history[-1].to_json()["accepted"] is True


def test_vector_engine_tunes_the_routing_example() -> None:
    with Evolver(VectorProblem(example_fitness), (1 / 3, 1 / 3, 1 / 3),
                 EvolutionPolicy(population=12), seed=3) as evolver:
        best = evolver.run(40)
    share = best.genome[1] / sum(best.genome)
    assert share > 0.9  # the "medium" route is the optimum
    assert best.fitness > example_fitness((1 / 3, 1 / 3, 1 / 3))


@pytest.mark.parametrize(("series", "trend"), [
    ([1, 2, 3, 4, 5, 6], Trend.IMPROVING),
    ([6, 5, 4, 3, 2, 1], Trend.DECLINING),
    ([3, 3, 3, 3, 3.01, 3], Trend.PLATEAU),
    ([1, 2, 3], Trend.PLATEAU),  # too short to say
    ([9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8], Trend.IMPROVING),  # window 10
])
def test_trend_classification(series: list[float], trend: Trend) -> None:
    assert classify(series, window=10) is trend


@given(st.lists(st.floats(0.01, 100), min_size=4, max_size=30))
def test_trend_of_a_sorted_series(values: list[float]) -> None:
    up = sorted(values)
    assert classify(up) in (Trend.IMPROVING, Trend.PLATEAU)
    assert classify(up[::-1]) in (Trend.DECLINING, Trend.PLATEAU)


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="rollback_threshold"):
        EvolutionPolicy(rollback_threshold=1.5)
    with pytest.raises(ValueError, match="population"):
        EvolutionPolicy(population=0)
