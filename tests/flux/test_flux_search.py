"""The STOKE-style search: graded cost, CEGIS, determinism on any number of workers."""

from __future__ import annotations

import random

import pytest
from fluxkit import cases_of, locally_and_on_two_workers, prog

from ouroboros.capabilities.evolve.executor import (
    LocalExecutor,
    default_workers,
    make_executor,
)
from ouroboros.capabilities.flux import equivalence
from ouroboros.capabilities.flux.cost import INVALID, evaluate, value_distance
from ouroboros.capabilities.flux.fitness import TestCase, score
from ouroboros.capabilities.flux.moves import MOVES, MoveSet, Vocabulary
from ouroboros.capabilities.flux.rewrites import neutral_sites, peephole
from ouroboros.capabilities.flux.search import SearchConfig, superoptimise
from ouroboros.kernel import UsageError

TRIPLE = prog("SENSE 0;SENSE 0;ADD;SENSE 0;ADD;ACT 0;HALT")
INPUTS = [(0,), (1,), (-1,), (7,), (-13,), (1000,), (123456,), (-42,)]


def test_the_correctness_cost_is_graded() -> None:
    assert value_distance(5, 5) == 0
    assert value_distance(5, 6) <= 2 and value_distance(0, -1) == 1  # close, not 64 bits
    cases = cases_of(TRIPLE, INPUTS)
    right = evaluate(TRIPLE, cases, fuel=1000)
    off_by_x = evaluate(prog("SENSE 0;SENSE 0;ADD;ACT 0;HALT"), cases, fuel=1000)
    nonsense = evaluate(prog("PUSH 77777;ACT 0;HALT"), cases, fuel=1000)
    silent = evaluate(prog("SENSE 0;POP;HALT"), cases, fuel=1000)
    assert right.correct and right.error == 0
    assert 0 < off_by_x.error < nonsense.error < silent.error
    assert evaluate(prog("ADD;HALT"), cases, fuel=1000) == INVALID


def test_every_move_keeps_exits_and_jump_targets_valid() -> None:
    program = prog("SENSE 0;STORE 1;LOAD 1;PUSH 0;LT;JZ p;SENSE 0;NEG;ACT 0;HALT;"
                   "p: LOAD 1;ACT 0;HALT;PUSH 9;ACT 1;HALT")  # dead code for cleanup
    moves = MoveSet(Vocabulary.of(program))
    rng = random.Random(3)
    seen = set()
    for _ in range(600):
        proposal = moves.propose(program, rng)
        assert proposal is not None
        child, name = proposal
        seen.add(name)
        assert any(i.op.name == "HALT" for i in child.instrs)
        assert all(0 <= i.args[0] <= len(child) for i in child.instrs if i.is_jump)
    assert seen == set(MOVES) | {"multi"}


def test_sound_rewrites_forward_stores_and_fold_common_subexpressions() -> None:
    memory = prog("SENSE 1;STORE 0;SENSE 0;LOAD 0;SUB;ACT 0;HALT")
    forwarded = [s for s in neutral_sites(memory) if s.replacement[0].op.name == "SENSE"]
    assert forwarded and forwarded[0].index == 3
    twice = prog("SENSE 0;SENSE 1;MUL;SENSE 0;SENSE 1;MUL;ADD;ACT 0;HALT")
    best, _ = peephole(twice)
    assert score(best, cases_of(twice, [(3, 4), (-2, 9)])).cycles_per_result < \
        score(twice, cases_of(twice, [(3, 4), (-2, 9)])).cycles_per_result
    assert equivalence.check(twice, best).status == "proved"


def test_the_search_finds_the_optimum_and_proves_it() -> None:
    cases = cases_of(TRIPLE, INPUTS)
    result = superoptimise(TRIPLE, cases, config=SearchConfig(budget=2500), seed=0)
    assert score(result.best, cases).cycles_per_result == 9  # SENSE 0; DUP; DUP; ADD; ADD
    assert result.verdict.status == "proved"
    assert result.evaluations <= 2500
    assert [c for _, c in result.history] == sorted((c for _, c in result.history), reverse=True)


def test_weak_tests_grow_by_counterexamples_and_the_winner_stays_correct() -> None:
    """Every training input is below 100, so `INSTINCT 0` passes them all; the search
    must find that out (CEGIS) instead of returning it."""
    clamp = prog("SENSE 0;STORE 1;LOAD 1;PUSH 100;LT;JNZ small;PUSH 100;JMP out;"
                 "small: LOAD 1;out: ACT 0;HALT")
    cases = cases_of(clamp, [(1,), (2,), (3,), (-5,)])
    assert score(prog("INSTINCT 0;HALT"), cases).confidence == 1.0  # the tempting overfit
    result = superoptimise(clamp, cases, config=SearchConfig(budget=1500), seed=1)
    assert result.counterexamples >= 1 and len(result.cases) > len(cases)
    assert result.verdict.status in ("proved", "tested")
    assert equivalence.check(clamp, result.best).status == "proved"


def test_the_result_does_not_depend_on_the_number_of_workers() -> None:
    cases = cases_of(TRIPLE, INPUTS)
    config = SearchConfig(budget=800, epochs=4)
    local, parallel = locally_and_on_two_workers(TRIPLE, cases, config, seed=5)
    assert (local.best, local.history, local.cases) == \
        (parallel.best, parallel.history, parallel.cases)


def test_a_program_failing_its_own_tests_is_refused() -> None:
    with pytest.raises(UsageError, match="fails 1 of its 1 test cases"):
        superoptimise(TRIPLE, (TestCase((1,), (4,)),), config=SearchConfig(budget=10))


def test_default_workers_follow_the_batch_size() -> None:
    assert default_workers(16, cpus=2) == 1
    assert default_workers(64, cpus=2) == 2
    assert default_workers(10_000, cpus=2) == 2
    assert isinstance(make_executor("process", 1), LocalExecutor)
    with pytest.raises(UsageError, match="unknown executor 'dask'"):
        make_executor("dask", 2)
