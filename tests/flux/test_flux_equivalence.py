"""Equivalence: SMT proofs agree with the interpreter; counterexamples are real."""

from __future__ import annotations

import random

from flux_strategies import verified_programs
from fluxkit import prog
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.flux import equivalence
from ouroboros.capabilities.flux.moves import MoveSet, Vocabulary
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import run


def outcome(p: Program, inputs: tuple[int, ...]) -> equivalence.Outcome:
    return equivalence.Outcome.of(run(p.to_image(), inputs))


def test_strength_reduction_is_proved() -> None:
    verdict = equivalence.check(prog("SENSE 0;PUSH 4;MUL;ACT 0;HALT"),
                                prog("SENSE 0;PUSH 2;SHL;ACT 0;HALT"))
    assert (verdict.status, verdict.method) == ("proved", "smt")


def test_branchy_and_branch_free_abs_are_proved_equal() -> None:
    branchy = prog("SENSE 0;DUP;PUSH 0;LT;JZ p;NEG;p: ACT 0;HALT")
    branch_free = prog("SENSE 0;DUP;PUSH 63;SHR;SWAP;OVER;XOR;SWAP;SUB;ACT 0;HALT")
    assert equivalence.check(branchy, branch_free).status == "proved"


def test_a_shortcut_right_on_small_inputs_gets_a_real_counterexample() -> None:
    clamp = prog("SENSE 0;PUSH 100;GT;JZ k;PUSH 100;ACT 0;HALT;k: INSTINCT 0;HALT")
    shortcut = prog("SENSE 0;DUP;PUSH 1000;LT;JZ big;DUP;PUSH 100;GT;JZ k;POP;PUSH 100;"
                    "k: ACT 0;HALT;big: ACT 0;HALT")
    verdict = equivalence.check(clamp, shortcut)
    assert verdict.status == "counterexample" and verdict.counterexample is not None
    x = verdict.counterexample
    assert x[0] >= 1000 and outcome(clamp, x) != outcome(shortcut, x)


def test_output_channels_are_behaviour() -> None:
    verdict = equivalence.check(prog("SENSE 0;ACT 0;HALT"), prog("SENSE 0;ACT 1;HALT"))
    assert verdict.status == "counterexample"


def test_a_trap_is_behaviour() -> None:
    divide = prog("SENSE 0;SENSE 1;DIV;ACT 0;HALT")
    guarded = prog("SENSE 0;SENSE 1;PUSH 1;OR;DIV;ACT 0;HALT")
    verdict = equivalence.check(divide, guarded)
    assert verdict.counterexample is not None
    assert outcome(divide, verdict.counterexample) != outcome(guarded, verdict.counterexample)


def test_input_driven_loops_fall_back_to_testing_with_extremes() -> None:
    countdown = prog("SENSE 0;l: DEC;DUP;JNZ l;ACT 0;HALT")
    verdict = equivalence.check(countdown, prog("PUSH 0;ACT 0;HALT"), count=300)
    assert (verdict.status, verdict.method) == ("tested", "testing")
    wrong = equivalence.check(countdown, prog("PUSH 1;ACT 0;HALT"), count=300)
    assert wrong.status == "counterexample"


def test_generated_inputs_include_the_extremes() -> None:
    vectors = equivalence.generated_inputs(2, count=400)
    values = {v for vec in vectors for v in vec}
    assert {0, 1, -1, equivalence.INT64_MIN, equivalence.INT64_MAX} <= values
    assert any(a < 0 < b for a, b in vectors)


@settings(max_examples=40, deadline=None)
@given(verified_programs(most=6), st.randoms(use_true_random=False))
def test_verdicts_agree_with_the_interpreter(program: Program, rnd: random.Random) -> None:
    """Whatever the checker says is checked against the reference interpreter: a proof
    means no sampled input differs; a counterexample really differs."""
    moves = MoveSet(Vocabulary.of(program))
    proposal = moves.propose(program, rnd)
    if proposal is None or not verify(proposal[0].to_image()).ok:
        return
    other = proposal[0]
    verdict = equivalence.check(program, other, count=200)
    if verdict.counterexample is not None:
        a = run(program.to_image(), verdict.counterexample, fuel=200_000)
        b = run(other.to_image(), verdict.counterexample, fuel=200_000)
        assert "fuel_exhausted" in (a.trap, b.trap) or \
            equivalence.Outcome.of(a) != equivalence.Outcome.of(b)
    elif verdict.status == "proved":
        n = max(1, equivalence.input_count(program, other))
        for vector in equivalence.generated_inputs(n, count=60, seed=rnd.randrange(99)):
            a = run(program.to_image(), vector, fuel=200_000)
            b = run(other.to_image(), vector, fuel=200_000)
            if "fuel_exhausted" not in (a.trap, b.trap):
                assert equivalence.Outcome.of(a) == equivalence.Outcome.of(b), vector


def test_path_explosion_falls_back_to_testing_in_bounded_time() -> None:
    """Ten independent branches: 1,024 paths, past the bound. The checker must not try
    to enumerate them (a hostile patch could), and still decides by testing."""
    lines = ["PUSH 0"]
    for k in range(10):
        lines += ["SENSE 0", f"PUSH {1 << k}", "AND", f"JZ s{k}", "INC", f"s{k}: NOP"]
    popcount = prog(";".join([*lines, "ACT 0", "HALT"]))
    verdict = equivalence.check(popcount, popcount, count=200)
    assert (verdict.status, verdict.method) == ("tested", "testing")


def test_a_counterexample_is_a_function_of_the_two_programs_alone() -> None:
    """z3's model for a `sat` query depends on everything made in its context before; in a
    shared context the same comparison gave 30 different counterexamples in 30 tries once
    other work had run in between (and a search's winner changed between runs in one
    process). Each comparison now has a context of its own."""
    import z3

    ref = prog("SENSE 0;SENSE 1;ADD;SENSE 2;MUL;ACT 0;HALT")
    bad = prog("SENSE 0;SENSE 1;OR;SENSE 2;MUL;ACT 0;HALT")
    spec = equivalence.SymbolicSpec(ref, 3)
    first = spec.compare(bad)
    assert first is not None and first.counterexample is not None
    assert outcome(ref, first.counterexample) != outcome(bad, first.counterexample)
    seen = {first.counterexample}
    # other comparisons and other z3 work in between: in a shared context every try gave
    # another counterexample, so 7 tries show it (30 took ~160 s of the CI)
    for k in range(1, 8):
        spec.compare(prog(f"SENSE 0;SENSE 1;XOR;PUSH {k};ADD;SENSE 2;MUL;ACT 0;HALT"))
        _ = [z3.BitVec(f"j{k}_{i}", 64) * (i + 3) for i in range(50)]
        again = spec.compare(bad)
        assert again is not None
        seen.add(again.counterexample)
    assert seen == {first.counterexample}
    fresh = equivalence.SymbolicSpec(ref, 3).compare(bad)
    assert fresh is not None and fresh.counterexample == first.counterexample
