"""FLUX mutation types, fitness, the tests-file format, and FLUX under the engine."""

from __future__ import annotations

import random

import pytest

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, Evolver
from ouroboros.capabilities.flux.asm import assemble, disassemble
from ouroboros.capabilities.flux.fitness import (
    FluxProblem,
    TestCase,
    TestsFileError,
    parse_tests,
    score,
)
from ouroboros.capabilities.flux.isa import Opcode
from ouroboros.capabilities.flux.mutations import MutationType, Proposer
from ouroboros.capabilities.flux.program import Program

REFLEX = Program.from_image(assemble(
    ".param keep 900\n.param trigger 50\nSENSE 0\nSTORE 0\nDECAY 0, keep\nLOAD 0\n"
    "THRESH trigger\nACT 0\nl: NOP\nJMP end\nend: HALT\n"))
SLOW = Program.from_image(assemble("SENSE 0\nPUSH 0\nADD\nPUSH 2\nMUL\nNOP\nACT 0\nHALT"))
CASES = tuple(TestCase((x,), (2 * x,)) for x in (0, 1, -3, 50))


@pytest.mark.parametrize("kind", list(MutationType))
def test_each_mutation_type_applies(kind: MutationType) -> None:
    proposer = Proposer({kind: 1.0})
    program = SLOW if kind is MutationType.OPTIMIZE_OPCODE else REFLEX
    rng = random.Random(1)
    mutation = proposer.propose(program, rng)
    assert mutation is not None
    assert mutation.kind is kind
    assert mutation.program != program
    if kind is MutationType.INSERT_NOP:
        assert len(mutation.program) == len(program) + 1
    if kind in (MutationType.ADJUST_DECAY, MutationType.TUNE_THRESHOLD):
        assert mutation.program.instrs == program.instrs
        changed = [i for i, (a, b) in enumerate(zip(program.params, mutation.program.params,
                                                      strict=True)) if a != b]
        assert changed == ([0] if kind is MutationType.ADJUST_DECAY else [1])
    if kind is MutationType.OPTIMIZE_OPCODE:
        assert score(mutation.program, CASES).cycles_per_result < score(SLOW, CASES).cycles_per_result


def test_inapplicable_types_are_not_proposed() -> None:
    proposer = Proposer({MutationType.ADJUST_DECAY: 1.0, MutationType.PATCH_JUMP: 1.0})
    assert proposer.propose(SLOW, random.Random(0)) is None


def test_size_bound_is_kept() -> None:
    big = Program((*(SLOW.instrs[:1] * 2000), SLOW.instrs[-1]))
    proposer = Proposer({MutationType.INSERT_NOP: 1.0}, max_bytes=big.size)
    assert proposer.propose(big, random.Random(0)) is None


def test_fitness_definition() -> None:
    s = score(SLOW, CASES, trust=0.5)
    assert s.confidence == 1.0
    assert s.cycles_per_result == 2 + 1 + 1 + 1 + 3 + 1 + 2 + 1
    penalised = 12 + 0.001 * SLOW.size  # no unreachable code: only the size penalty
    assert s.penalised_cycles == pytest.approx(penalised)
    assert s.fitness == pytest.approx((1 / penalised) * 1.0 * 0.5)
    half = score(SLOW, (*CASES[:2], TestCase((1,), (9,)), TestCase((2,), (9,))))
    assert half.confidence == 0.5 and half.fitness == pytest.approx((1 / penalised) * 0.5)


def test_unreachable_code_costs_fitness() -> None:
    dead = Program.from_image(assemble(disassemble(SLOW.to_image()) + "PUSH 1\nPOP\nHALT\n"))
    assert score(dead, CASES).cycles_per_result == score(SLOW, CASES).cycles_per_result
    assert score(dead, CASES).penalised_cycles == pytest.approx(
        score(SLOW, CASES).penalised_cycles + 3 * 0.25 + 0.001 * 7)


def test_invalid_or_failing_programs_score_zero() -> None:
    broken = Program.from_image(assemble("ADD\nHALT"))
    assert score(broken, CASES).fitness == 0.0
    assert "stack underflow" in score(broken, CASES).reasons[0]
    wrong = Program.from_image(assemble("PUSH 7\nACT 0\nHALT"))
    assert score(wrong, CASES).fitness == 0.0


def test_confidence_floor_stops_trading_answers_for_speed() -> None:
    problem = FluxProblem.for_program(SLOW, CASES)
    assert problem.min_confidence == 1.0
    cheat = Program.from_image(assemble("PUSH 0\nACT 0\nHALT"))  # passes only x = 0
    assert score(cheat, CASES).fitness > 0
    assert problem.evaluate(cheat) == 0.0
    assert problem.fuel == 4 * 12 + 100


def test_evolution_reaches_the_optimum_and_keeps_behaviour() -> None:
    with Evolver(FluxProblem.for_program(SLOW, CASES), SLOW, EvolutionPolicy(population=12),
                 seed=3) as evolver:
        best = evolver.run(40)
    result = score(best.genome, CASES)
    assert result.confidence == 1.0
    assert result.cycles_per_result == 2 + 1 + 1 + 2 + 1  # SENSE; DUP; ADD; ACT; HALT
    assert best.genome.instrs[-1].op is Opcode.HALT


@pytest.mark.parametrize(("text", "message"), [
    ("[", "line 1: invalid JSON"),
    ('[\n{"input": [1], "output": [2]},\n]', "line 3: invalid JSON"),
    ("{}", "non-empty JSON list"),
    ("[]", "non-empty JSON list"),
    ('[{"input": [1]}]', 'case 1: must be an object with "input" and "output"'),
    ('[{"input": [1], "output": [1], "extra": []}]', 'case 1: must be an object with'),
    ('[{"input": [1], "output": [1, 2], "channels": [0]}]', 'one channel .0..255. per output'),
    ('[{"input": [1], "output": [1], "channels": [256]}]', 'one channel .0..255. per output'),
    ('[{"input": [1], "output": [2]}, {"input": [1.5], "output": []}]',
     'case 2: "input" must be a list of 64-bit integers'),
    ('[{"input": [true], "output": []}]', 'case 1: "input" must be a list'),
    ('[{"input": [], "output": [99999999999999999999]}]', 'case 1: "output" must be a list'),
])
def test_malformed_tests_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(TestsFileError, match=message.replace("[", r"\[")):
        parse_tests(text)


def evolve_slow(seed: int, workers: int) -> tuple[Program, list[object]]:
    problem = FluxProblem.for_program(SLOW, CASES)
    with Evolver(problem, SLOW, EvolutionPolicy(population=8), seed=seed,
                 workers=workers) as evolver:
        best = evolver.run(12)
        return best.genome, [r.to_json() for r in evolver.history]


def test_flux_evolution_is_deterministic_bit_for_bit() -> None:
    first = evolve_slow(11, 1)
    assert evolve_slow(11, 1) == first
    assert evolve_slow(11, 2) == first  # parallel scoring changes nothing
    assert evolve_slow(12, 1) != first
