"""Round-3 rewrites (branches, strength reduction): each is proved equivalent by the z3
check where it fires, and refused where it would be wrong (negative inputs, 64-bit
overflow, a value that is not a boolean, a different output channel)."""

from __future__ import annotations

from fluxkit import prog

from ouroboros.capabilities.flux import analysis, equivalence
from ouroboros.capabilities.flux.fitness import TestCase, score
from ouroboros.capabilities.flux.isa import Opcode
from ouroboros.capabilities.flux.program import Instr, Program
from ouroboros.capabilities.flux.rewrites import apply_site, peephole, sites
from ouroboros.capabilities.flux.search import SearchConfig, superoptimise
from ouroboros.capabilities.flux.vm import run

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def text(p: Program) -> str:
    return ";".join(" ".join([i.op.name, *map(str, i.args)]) for i in p.instrs)


def optimised(p: Program) -> Program:
    return analysis.remove_unreachable(peephole(p)[0])


def assert_proved(before: Program, after: Program) -> None:
    verdict = equivalence.check(before, after)
    assert verdict.status == "proved", verdict


def refuted(reference: Program, candidate: Program) -> tuple[int, ...]:
    verdict = equivalence.check(reference, candidate)
    assert verdict.status == "counterexample", verdict
    assert verdict.counterexample is not None
    return tuple(verdict.counterexample)


def test_an_eq_zero_test_before_a_branch_inverts_the_branch() -> None:
    src = prog("SENSE 0;PUSH 0;EQ;JNZ z;SENSE 1;ACT 0;HALT;z: PUSH 3;ACT 0;HALT")
    best = optimised(src)
    assert text(best) == "SENSE 0;JZ 5;SENSE 1;ACT 0;HALT;PUSH 3;ACT 0;HALT"
    assert_proved(src, best)
    # Dropping the test without flipping the branch is wrong, and the check says so.
    refuted(src, prog("SENSE 0;JNZ z;SENSE 1;ACT 0;HALT;z: PUSH 3;ACT 0;HALT"))


def test_jumps_to_jumps_are_threaded_and_the_trampoline_goes() -> None:
    src = prog("SENSE 1;JNZ hop;SENSE 2;JMP out;hop: JMP usex;out: ACT 0;HALT;"
               "usex: SENSE 0;JMP out")
    best = optimised(src)
    assert not any(i.op is Opcode.JMP for i in best.instrs)
    assert_proved(src, best)


def test_a_conditional_jump_to_the_next_instruction_is_a_pop() -> None:
    src = prog("SENSE 0;SENSE 1;JZ n;n: ACT 0;HALT")
    assert any(s.replacement == (Instr(Opcode.POP),) for s in sites(src))
    best = optimised(src)
    assert text(best) == "INSTINCT 0;HALT"  # then SENSE 1; POP and SENSE 0; ACT 0 go
    assert_proved(src, best)


def test_a_branch_on_a_boolean_choosing_constants_becomes_branch_free() -> None:
    flag = prog("SENSE 0;SENSE 1;GT;JZ no;PUSH 1;ACT 0;HALT;no: PUSH 0;ACT 0;HALT")
    assert text(optimised(flag)) == "SENSE 0;SENSE 1;GT;ACT 0;HALT"
    plus = prog("SENSE 0;SENSE 1;LT;JNZ y;PUSH 5;JMP out;y: PUSH 6;out: ACT 0;HALT")
    assert text(optimised(plus)) == "SENSE 0;SENSE 1;LT;PUSH 5;ADD;ACT 0;HALT"
    odd = prog("SENSE 0;PUSH 2;MOD;JNZ odd;PUSH 0;ACT 0;HALT;odd: PUSH 1;ACT 0;HALT")
    assert text(optimised(odd)) == "SENSE 0;PUSH 1;AND;ACT 0;HALT"
    for src in (flag, plus, odd):
        assert_proved(src, optimised(src))


def test_a_branch_on_a_value_that_is_not_boolean_is_left_alone() -> None:
    # x != 0 ? 1 : 0 is not x: the tested value may be 5 or -1.
    src = prog("SENSE 0;JZ no;PUSH 1;ACT 0;HALT;no: PUSH 0;ACT 0;HALT")
    assert not any(s.width == 2 and not s.replacement for s in sites(src))
    assert optimised(src) == src
    inputs = refuted(src, prog("SENSE 0;ACT 0;HALT"))
    assert inputs[0] not in (0, 1)


def test_a_branch_whose_paths_emit_on_different_channels_is_left_alone() -> None:
    src = prog("SENSE 0;PUSH 0;LT;JZ no;PUSH 1;ACT 0;HALT;no: PUSH 0;ACT 1;HALT")
    best = optimised(src)
    assert any(i.op is Opcode.JZ for i in best.instrs)
    assert_proved(src, best)
    # The branch-free version would emit the flag on channel 0 on both paths.
    refuted(src, prog("SENSE 0;PUSH 0;LT;ACT 0;HALT"))


def test_a_swap_before_a_commutative_op_goes_and_before_a_comparison_flips_it() -> None:
    for op, then in (("ADD", "ADD"), ("EQ", "EQ"), ("LT", "GT"), ("GT", "LT")):
        src = prog(f"SENSE 0;SENSE 1;DEC;SWAP;{op};ACT 0;HALT")
        assert text(optimised(src)) == f"SENSE 0;SENSE 1;DEC;{then};ACT 0;HALT"
        assert_proved(src, optimised(src))
    refuted(prog("SENSE 0;SENSE 1;DEC;SWAP;LT;ACT 0;HALT"),
            prog("SENSE 0;SENSE 1;DEC;LT;ACT 0;HALT"))
    # SUB does not commute: SWAP; SUB stays.
    assert optimised(prog("SENSE 0;SENSE 1;DEC;SWAP;SUB;ACT 0;HALT")).instrs[3].op is Opcode.SWAP


def test_a_multiply_by_a_negative_power_of_two_is_a_shift_and_a_negation() -> None:
    for k in (2, 8, 1 << 20, 1 << 31):
        src = prog(f"SENSE 0;PUSH {-k};MUL;ACT 0;HALT")
        best = optimised(src)
        assert text(best) == f"SENSE 0;PUSH {k.bit_length() - 1};SHL;NEG;ACT 0;HALT"
        assert_proved(src, best)  # at 64 bits, INT64_MIN and overflow included
        for x in (INT64_MIN, INT64_MAX, -1, 3):
            assert run(src.to_image(), [x]).output == run(best.to_image(), [x]).output
    # Without the negation it is wrong.
    refuted(prog("SENSE 0;PUSH -8;MUL;ACT 0;HALT"), prog("SENSE 0;PUSH 3;SHL;ACT 0;HALT"))


def test_div_and_mod_by_a_power_of_two_of_a_proven_non_negative_value_are_shifts() -> None:
    div = prog("SENSE 0;PUSH 255;AND;SENSE 1;PUSH 255;AND;ADD;PUSH 4;DIV;ACT 0;HALT")
    assert "PUSH 2;SHR" in text(optimised(div)) and "DIV" not in text(optimised(div))
    mod = prog("SENSE 0;PUSH 1023;AND;PUSH 16;MOD;ACT 0;HALT")
    assert text(optimised(mod)) == "SENSE 0;PUSH 1023;AND;PUSH 15;AND;ACT 0;HALT"
    for src in (div, mod):
        assert_proved(src, optimised(src))


def test_div_and_mod_of_a_value_that_may_be_negative_are_not_rewritten() -> None:
    for op, wrong in (("DIV", "PUSH 2;SHR"), ("MOD", "PUSH 3;AND")):
        src = prog(f"SENSE 0;PUSH 4;{op};ACT 0;HALT")
        assert optimised(src) == src
        inputs = refuted(src, prog(f"SENSE 0;{wrong};ACT 0;HALT"))
        assert inputs[0] < 0  # only a negative dividend tells them apart
    # ((x & 0x7fffffff) << 33) + 1 may be negative (64-bit overflow): no bound, no rewrite.
    shifted = prog("SENSE 0;PUSH 2147483647;AND;PUSH 33;SHL;INC;PUSH 4;DIV;ACT 0;HALT")
    assert analysis.top_intervals(shifted)[6] is None
    assert optimised(shifted) == shifted
    refuted(shifted,
            prog("SENSE 0;PUSH 2147483647;AND;PUSH 33;SHL;INC;PUSH 2;SHR;ACT 0;HALT"))
    # A sum of two non-negative values that could wrap past INT64_MAX has no bound.
    stack: list[analysis.Interval] = [(0, 1 << 62), (0, 1 << 62)]
    analysis._interval_step(stack, Instr(Opcode.ADD))
    assert stack == [None]
    stack = [(0, 1 << 61), (0, 1 << 61)]
    analysis._interval_step(stack, Instr(Opcode.ADD))
    assert stack == [(0, 1 << 62)]


def test_a_bound_from_one_block_does_not_leak_into_a_jump_target() -> None:
    # At `j` the dividend comes either from the masked path or straight from SENSE 1.
    src = prog("SENSE 0;JZ j;SENSE 1;PUSH 255;AND;JMP k;j: SENSE 1;k: PUSH 8;DIV;ACT 0;HALT")
    assert not any(s.replacement and s.replacement[-1].op is Opcode.SHR for s in sites(src))
    best = optimised(src)
    assert_proved(src, best)


def test_every_new_site_on_a_mixed_program_is_proved() -> None:
    src = prog("SENSE 0;PUSH 4095;AND;PUSH 8;DIV;PUSH -4;MUL;SENSE 1;PUSH 0;EQ;JZ a;"
               "PUSH 1;JMP out;a: JMP b;b: PUSH 0;out: ADD;ACT 0;HALT")
    found = list(sites(src))
    assert len(found) >= 3
    for site in found:
        assert_proved(src, apply_site(src, site))


def test_the_search_reaches_a_branch_free_optimum_and_it_is_proved() -> None:
    src = prog("SENSE 0;SENSE 1;LT;JZ no;PUSH 4;ACT 0;HALT;no: PUSH 3;ACT 0;HALT")
    inputs = [(0, 0), (1, 2), (-1, 5), (7, -3), (-13, 11), (4, 4)]
    cases = tuple(TestCase.from_run(i, run(src.to_image(), i)) for i in inputs)
    result = superoptimise(src, cases, config=SearchConfig(budget=300), seed=0)
    assert score(result.best, cases).cycles_per_result == 10
    assert result.verdict.status == "proved"
    assert Instr(Opcode.JZ, (4,)) not in result.best.instrs
