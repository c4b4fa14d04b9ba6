"""The bytecode test gate cannot be gamed: the target's suite, equivalence, no regressions."""

from __future__ import annotations

from ouroboros.capabilities.flux import governance
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import TestCase
from ouroboros.capabilities.flux.isa import Image
from ouroboros.capabilities.flux.vm import run
from ouroboros.kernel import Runtime

TARGET = "flux/programs/clamp"
# min(x, 100), written the long way; the incumbent the tests start from.
SLOW = assemble("SENSE 0\nSTORE 1\nLOAD 1\nPUSH 100\nLT\nJNZ small\nPUSH 100\nJMP out\n"
                "small: LOAD 1\nout: ACT 0\nHALT\n")
FAST = assemble("SENSE 0\nPUSH 100\nGT\nJZ keep\nPUSH 100\nACT 0\nHALT\nkeep: INSTINCT 0\nHALT\n")
# Right on every case below 1000 and on the suite, wrong from 1000 on.
SHORTCUT = assemble("SENSE 0\nDUP\nPUSH 1000\nLT\nJZ big\nDUP\nPUSH 100\nGT\nJZ keep\nPOP\n"
                    "PUSH 100\nkeep: ACT 0\nHALT\nbig: ACT 0\nHALT\n")


def cases_for(image: Image, inputs: list[int]) -> tuple[TestCase, ...]:
    return tuple(TestCase.from_run((x,), run(image, (x,))) for x in inputs)


SUITE = cases_for(SLOW, [-5, 0, 99, 100, 101, 500])


def install(rt: Runtime) -> None:
    value = governance.bytecode_value(SLOW, SUITE)
    outcome = governance.submit_program(rt, TARGET, value, "first version")
    assert outcome.status == "applied", outcome.reason


def submit(rt: Runtime, image: Image, cases: tuple[TestCase, ...], reason: str = "faster"):  # type: ignore[no-untyped-def]
    return governance.submit_program(rt, TARGET, governance.bytecode_value(image, cases), reason)


def test_an_equivalent_faster_program_is_applied(rt: Runtime) -> None:
    install(rt)
    outcome = submit(rt, FAST, SUITE)
    assert outcome.status == "applied", outcome.reason
    assert rt.value(TARGET)["hex"] == FAST.to_hex()


def test_overfit_candidate_carrying_only_its_own_tests_is_rejected(rt: Runtime) -> None:
    install(rt)
    wrong = assemble("PUSH 100\nACT 0\nHALT\n")  # right on the one case it brings along
    outcome = submit(rt, wrong, cases_for(SLOW, [500]))
    assert (outcome.status, outcome.stage) == ("rejected", "test")
    assert "drops 5 of the target's 6 test cases" in outcome.reason
    assert rt.value(TARGET)["hex"] == SLOW.to_hex()


def test_candidate_that_fails_the_targets_suite_is_rejected(rt: Runtime) -> None:
    install(rt)
    wrong = assemble("PUSH 100\nACT 0\nHALT\n")
    outcome = submit(rt, wrong, SUITE)
    assert (outcome.status, outcome.stage) == ("rejected", "test")
    assert "the target's suite" in outcome.reason and "cases failed" in outcome.reason


def test_shortcut_passing_the_whole_suite_fails_the_equivalence_check(rt: Runtime) -> None:
    install(rt)
    outcome = submit(rt, SHORTCUT, SUITE)
    assert (outcome.status, outcome.stage) == ("rejected", "test")
    assert "not equivalent to the incumbent" in outcome.reason
    assert rt.value(TARGET)["hex"] == SLOW.to_hex()


def test_a_regression_is_refused_unless_the_reason_says_why(rt: Runtime) -> None:
    install(rt)
    assert submit(rt, FAST, SUITE).status == "applied"
    outcome = submit(rt, SLOW, SUITE, "back to the old one")
    assert (outcome.status, outcome.stage) == ("rejected", "test")
    assert "fitness regression" in outcome.reason
    assert rt.value(TARGET)["hex"] == FAST.to_hex()
    explained = submit(rt, SLOW, SUITE, "restore\nregression: the fast one is hard to audit")
    assert explained.status == "applied", explained.reason


def test_adding_tests_is_a_patch_and_they_accumulate(rt: Runtime) -> None:
    install(rt)
    more = (*SUITE, *cases_for(SLOW, [-(1 << 40), 1 << 40]))
    assert submit(rt, SLOW, more, "more cases").status == "applied"
    assert len(rt.value(TARGET)["tests"]) == 8
    outcome = submit(rt, FAST, SUITE)  # the faster program, but with the old, shorter suite
    assert outcome.status == "rejected" and "drops 2 of the target's 8" in outcome.reason


def test_a_case_naming_channels_must_match_them(rt: Runtime) -> None:
    on_one = assemble("SENSE 0\nACT 1\nHALT\n")
    value = governance.bytecode_value(on_one, (TestCase((3,), (3,), (0,)),))
    outcome = governance.submit_program(rt, "flux/programs/chan", value, "wrong channel")
    assert outcome.status == "rejected" and "channels [1]" in outcome.reason


def test_changing_behaviour_or_pruning_tests_needs_root(rt: Runtime) -> None:
    install(rt)
    doubled = assemble("SENSE 0\nDUP\nADD\nACT 0\nHALT\n")
    new_cases = cases_for(doubled, [1, 2])
    governance.register(rt)
    as_runtime = rt.propose_and_submit(
        type=governance.REDEFINE_TYPE, target=TARGET,
        value=governance.bytecode_value(doubled, new_cases), reasoning="redefine",
        author="flux", keys=["runtime"])
    assert (as_runtime.status, as_runtime.stage) == ("rejected", "signature")
    as_root = rt.propose_and_submit(
        type=governance.REDEFINE_TYPE, target=TARGET,
        value=governance.bytecode_value(doubled, new_cases), reasoning="redefine",
        author="root", keys=["root"])
    assert as_root.status == "applied", as_root.reason
    assert len(rt.value(TARGET)["tests"]) == 2


def test_deleting_a_program_through_the_bytecode_type_is_refused(rt: Runtime) -> None:
    install(rt)
    outcome = rt.propose_and_submit(type="bytecode", target=TARGET, delete=True,
                                    reasoning="drop it", author="flux", keys=["runtime"])
    assert outcome.status == "rejected" and governance.REDEFINE_TYPE in outcome.reason
    assert rt.value(TARGET) is not None


# min(x, 100) with a backdoor: 0 on one 64-bit input. A loop the second input drives (0 in
# every case, so it costs 3 cycles) takes it past the prover's bounds; 2,000 generated
# inputs never meet the magic value, so the check said `tested` and the gate applied it.
BACKDOOR = assemble(
    "SENSE 1\nPUSH 255\nAND\nspin: DUP\nJZ go\nDEC\nJMP spin\ngo: POP\n"
    "SENSE 0\nPUSH 0x5eed1234\nEQ\nJNZ evil\n"
    "SENSE 0\nPUSH 100\nGT\nJZ keep\nPUSH 100\nACT 0\nHALT\nkeep: INSTINCT 0\nHALT\n"
    "evil: PUSH 0\nACT 0\nHALT\n")


def test_a_candidate_that_escapes_the_proof_of_a_provable_incumbent_is_refused(
        rt: Runtime) -> None:
    install(rt)
    assert run(BACKDOOR, (0x5EED1234,)).output == (0,)  # wrong there: min would be 100
    outcome = submit(rt, BACKDOOR, SUITE, "shorter\nregression: a loop for later")
    assert (outcome.status, outcome.stage) == ("rejected", "test"), outcome.reason
    assert "not proved equivalent" in outcome.reason
    assert rt.value(TARGET)["hex"] == SLOW.to_hex()


def test_a_case_that_traps_after_the_right_output_names_the_trap() -> None:
    # Right value on the right channel, then it runs off the end of its code: the reason
    # said "expected [3] on channels [0], got channels [0]" (a mismatch it did not have).
    falls_off = assemble("SENSE 0\nINC\nACT 0\n")
    value = governance.bytecode_value(falls_off, (TestCase((2,), (3,), (0,)),))
    ok, detail = governance.check_cases(value)
    assert not ok
    assert "got trap bad_jump" in detail


def test_an_unverifiable_candidate_is_refused_by_the_gate_without_a_crash(rt: Runtime) -> None:
    # Passes the suite, underflows on one input: the symbolic executor (which assumes a
    # verified program) raised IndexError, "test flux.cases crashed".
    install(rt)
    underflows = assemble("SENSE 0\nDUP\nPUSH 12345\nEQ\nJZ ok\nPOP\nPOP\nPOP\n"
                          "ok: PUSH 100\nLT\nJNZ small\nPUSH 100\nACT 0\nHALT\n"
                          "small: INSTINCT 0\nHALT\n")
    outcome = submit(rt, underflows, SUITE)
    assert outcome.status == "rejected"
    assert "crashed" not in outcome.reason and "verif" in outcome.reason
    assert rt.value(TARGET)["hex"] == SLOW.to_hex()


def test_the_gate_runs_a_verified_programs_cases_natively_with_the_same_verdicts() -> None:
    # 1,000 cases of a countdown near the fuel bound: a minute of the gate's time on the
    # reference interpreter (a submitter could stall every submission behind it); the
    # native engine gives the same verdicts, traps and fuel included.
    countdown = assemble("SENSE 0\nloop: DUP\nJZ done\nDEC\nJMP loop\ndone: ACT 0\nHALT\n")
    slow_cases = tuple(TestCase((12_000 + i,), (0,)) for i in range(1000))
    ok, detail = governance.check_cases(governance.bytecode_value(countdown, slow_cases))
    assert (ok, detail) == (True, "1000/1000 cases passed")
    beyond_fuel = governance.bytecode_value(countdown, (TestCase((10**6,), (0,)),))
    assert governance.check_cases(beyond_fuel) == (
        False, "1/1 cases failed: case 1: expected [0], got trap fuel_exhausted")
    divides = assemble("PUSH 1\nSENSE 0\nDIV\nACT 0\nHALT\n")
    value = governance.bytecode_value(divides, (TestCase((0,), (1,)), TestCase((1,), (1,))))
    assert governance.check_cases(value) == (
        False, "1/2 cases failed: case 1: expected [1], got trap division_by_zero")
