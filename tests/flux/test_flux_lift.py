"""Lifting and lowering (lift.py) and the finishing descent (search._Finisher): counted
loops become straight-line code proved equivalent, the lifter bails out where it must,
and no descent ever takes a wrong candidate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fluxkit import cases_of, locally_and_on_two_workers, prog

from ouroboros.capabilities.flux import equivalence, lift
from ouroboros.capabilities.flux.cost import evaluate
from ouroboros.capabilities.flux.fitness import TestCase, score
from ouroboros.capabilities.flux.moves import Vocabulary
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.search import (
    SearchConfig,
    Spec,
    _Finisher,
    default_fuel,
    superoptimise,
)
from ouroboros.capabilities.flux.vm import run

INPUTS = [(0, 0), (1, 2), (-1, 5), (7, -3), (-13, 11), (1000, 4), (123456, -98765), (-42, 9)]

# acc += i * x for i = 10 down to 1: 55 x, by a loop of ten turns.
SUM_I_TIMES_X = prog("SENSE 0;STORE 1;PUSH 0;STORE 0;PUSH 10;"
                     "l: DUP;LOAD 1;MUL;LOAD 0;ADD;STORE 0;DEC;DUP;JNZ l;"
                     "POP;LOAD 0;ACT 0;HALT")


def straight(p: Program) -> bool:
    return not any(ins.is_jump for ins in p.instrs)


def test_a_counted_loop_summing_i_times_x_is_lowered_to_straight_line_code_proved_equal(
) -> None:
    lowered = lift.proposals(SUM_I_TIMES_X)
    assert lowered, "the ten-turn loop was not lifted"
    best = lowered[0]
    assert straight(best)
    assert [str(i) for i in best.instrs] == ["SENSE 0", "PUSH 55", "MUL", "ACT 0", "HALT"]
    verdict = equivalence.check(SUM_I_TIMES_X, best)
    assert verdict.status == "proved" and verdict.method == "smt", verdict
    cases = cases_of(SUM_I_TIMES_X, INPUTS)
    assert score(best, cases).cycles_per_result < score(SUM_I_TIMES_X, cases).cycles_per_result


def test_a_loop_inside_a_branchy_program_is_lifted_as_a_region() -> None:
    # The branch on input 1 keeps the whole program out of reach; the loop before it
    # (x + 3, six times) is a region of its own, and its slot is read after it.
    source = prog("SENSE 0;STORE 0;PUSH 6;l: LOAD 0;PUSH 3;ADD;STORE 0;DEC;DUP;JNZ l;POP;"
                  "SENSE 1;JZ z;LOAD 0;ACT 0;HALT;z: PUSH 1;ACT 0;HALT")
    lowered = lift.proposals(source)
    assert lowered
    assert all(equivalence.check(source, p).equivalent for p in lowered)
    assert any(ins.args == (18,) for ins in lowered[0].instrs), lowered[0]
    assert not any(ins.is_jump and ins.args[0] <= i for i, ins in enumerate(lowered[0].instrs))


def test_a_loop_whose_count_depends_on_an_input_is_refused() -> None:
    counted_by_input = prog("PUSH 0;STORE 0;SENSE 1;PUSH 7;AND;INC;"
                            "l: LOAD 0;SENSE 0;ADD;STORE 0;DEC;DUP;JNZ l;POP;LOAD 0;ACT 0;HALT")
    depth_at = lift.depths(counted_by_input)
    assert depth_at is not None
    with pytest.raises(lift.Bail, match="a branch on a value that is not constant"):
        lift.lift_region(counted_by_input, 0, len(counted_by_input), depth_at)
    # No region containing the loop is lowered; the straight-line head may be.
    for p in lift.proposals(counted_by_input):
        assert any(ins.is_jump for ins in p.instrs)


def test_a_loop_beyond_the_unroll_bound_bails_out() -> None:
    sixty_four = prog("PUSH 0;PUSH 64;l: SWAP;SENSE 0;ADD;SWAP;DEC;DUP;JNZ l;POP;ACT 0;HALT")
    sixty_five = prog("PUSH 0;PUSH 65;l: SWAP;SENSE 0;ADD;SWAP;DEC;DUP;JNZ l;POP;ACT 0;HALT")
    at_bound = lift.proposals(sixty_four)
    assert at_bound and straight(at_bound[0])
    assert equivalence.check(sixty_four, at_bound[0]).status == "proved"
    depth_at = lift.depths(sixty_five)
    assert depth_at is not None
    with pytest.raises(lift.Bail, match="a loop runs more than 64 times"):
        lift.lift_region(sixty_five, 0, len(sixty_five), depth_at)
    assert all(not straight(p) for p in lift.proposals(sixty_five))


def test_a_value_that_doubles_its_expression_every_turn_bails_out() -> None:
    """x = x XOR (x AND 3), 12 and 60 turns: the lifter cannot fold it, and the tree doubles
    each turn (x is used twice). Written out it grew without bound: a search worker with
    loop rotation on reached 24 GB inside the lifter's sort keys. Past 256 nodes it bails."""
    def doubling(turns: int) -> Program:
        return prog(f"SENSE 0;STORE 0;PUSH {turns};STORE 1;"
                    "l: LOAD 0;DUP;PUSH 3;AND;XOR;STORE 0;LOAD 1;DEC;DUP;STORE 1;JNZ l;"
                    "LOAD 0;ACT 0;HALT")
    for turns in (12, 60):
        program = doubling(turns)
        depth_at = lift.depths(program)
        assert depth_at is not None
        with pytest.raises(lift.Bail, match="an expression of more than 256 nodes"):
            lift.lift_region(program, 0, len(program), depth_at)
        assert all(any(ins.is_jump for ins in p.instrs) for p in lift.proposals(program))
    # a few turns stay within the bound and are lowered as before
    short = doubling(3)
    lowered = lift.proposals(short)
    assert lowered and straight(lowered[0])
    assert equivalence.check(short, lowered[0]).status in ("proved", "tested")


def test_division_by_a_value_that_may_be_zero_is_not_lifted() -> None:
    divides = prog("SENSE 0;SENSE 1;DIV;PUSH 0;ADD;ACT 0;HALT")
    depth_at = lift.depths(divides)
    assert depth_at is not None
    with pytest.raises(lift.Bail, match="not a non-zero constant"):
        lift.lift_region(divides, 0, len(divides), depth_at)


def test_lowering_folds_constants_and_strength_reduces() -> None:
    source = prog("SENSE 0;PUSH 2;SHL;PUSH 3;SHL;PUSH 100;PUSH 4;DIV;ADD;ACT 0;"
                  "SENSE 1;NOT;SENSE 0;ADD;NOT;ACT 1;HALT")  # ~(~y + x) = y - x
    lowered = lift.proposals(source)
    assert lowered
    text = [str(i) for i in lowered[0].instrs]
    assert text == ["SENSE 0", "PUSH 5", "SHL", "PUSH 25", "ADD", "ACT 0",
                    "SENSE 1", "SENSE 0", "SUB", "ACT 1", "HALT"], text
    assert equivalence.check(source, lowered[0]).status == "proved"


class _Planted(_Finisher):
    """A finisher whose first neighbour is wrong yet passes every test case: it emits
    x + x, which equals x * 3 on the one training input x = 0."""

    def __init__(self, wrong: Program, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.wrong = wrong

    def neighbours(self, program: Program) -> Iterator[tuple[Program, str]]:
        yield self.wrong, "planted"
        yield from super().neighbours(program)


def test_the_finishing_descent_never_accepts_a_candidate_that_is_wrong() -> None:
    original = prog("SENSE 0;PUSH 3;MUL;NOP;ACT 0;HALT")
    wrong = prog("SENSE 0;DUP;ADD;ACT 0;HALT")
    cases = [TestCase.from_run((0,), run(original.to_image(), (0,)))]
    fuel = default_fuel(original, cases)
    assert evaluate(wrong, cases, fuel=fuel).correct  # it passes the tests it is given
    spec = Spec(original, fuel, Vocabulary.of(original))

    def cost(p: Program) -> object:
        return evaluate(p, cases, fuel=fuel)

    finisher = _Planted(wrong, spec, SearchConfig(), cases, cost)
    taken = list(finisher.descend(original, evaluate(original, cases, fuel=fuel), 200))
    assert wrong not in [p for p, _, _ in taken]
    assert finisher.found >= 1 and len(cases) >= 2  # the counterexample became a case
    assert taken, "the NOP should still have gone"
    final = taken[-1][0]
    assert equivalence.check(original, final).status == "proved"
    assert finisher.spent <= 200


def test_a_search_closes_a_counted_loop_and_reports_its_lifting_and_finishing() -> None:
    cases = cases_of(SUM_I_TIMES_X, INPUTS)
    config = SearchConfig(budget=600, epochs=3)
    result = superoptimise(SUM_I_TIMES_X, cases, config=config, seed=0)
    assert [str(i) for i in result.best.instrs] == ["SENSE 0", "PUSH 55", "MUL", "ACT 0",
                                                    "HALT"]
    assert result.verdict.status == "proved"
    assert result.improved_by.get("lift", 0) >= 1
    assert result.lifts >= 1 and result.finish_evaluations >= 1
    assert result.evaluations <= config.budget


def test_finishing_and_lifting_give_the_same_result_on_any_number_of_workers() -> None:
    source = prog("SENSE 0;STORE 0;LOAD 0;PUSH 8;MUL;ACT 0;PUSH 2;PUSH 5;MUL;SENSE 1;ADD;"
                  "ACT 1;PUSH 0;STORE 2;PUSH 4;l: LOAD 2;SENSE 1;ADD;STORE 2;DEC;DUP;JNZ l;"
                  "POP;LOAD 2;ACT 2;HALT")
    cases = cases_of(source, INPUTS)
    config = SearchConfig(budget=400, epochs=2)
    one, two = locally_and_on_two_workers(source, cases, config, seed=5)
    assert one.best == two.best and one.history == two.history
    assert one.evaluations == two.evaluations and one.improved_by == two.improved_by


def test_forwarding_sees_through_a_dup_before_the_store() -> None:
    from ouroboros.capabilities.flux.rewrites import apply_site, neutral_sites

    source = prog("SENSE 1;DUP;STORE 1;SENSE 0;LT;JZ k;LOAD 1;ACT 0;HALT;k: INSTINCT 0;HALT")
    forwarded = [apply_site(source, s) for s in neutral_sites(source)
                 if s.replacement == (source.instrs[0],)]
    assert forwarded, "LOAD 1 should become SENSE 1"
    assert equivalence.check(source, forwarded[0]).status == "proved"
    # A later store to the slot wins: its producer is forwarded, never the earlier one.
    later = prog("SENSE 1;DUP;STORE 1;SENSE 0;STORE 1;LOAD 1;ADD;ACT 0;HALT")
    for site in neutral_sites(later):
        assert site.replacement != (later.instrs[0],)
        assert equivalence.check(later, apply_site(later, site)).status == "proved"
