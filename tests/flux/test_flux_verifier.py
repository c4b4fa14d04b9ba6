"""The verifier rejects each class of unsafe program with a reason that names it."""

from __future__ import annotations

import pytest
from flux_strategies import verified_programs
from hypothesis import given

from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.isa import Image
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify


def reasons(source: str) -> str:
    verdict = verify(assemble(source))
    assert not verdict.ok
    return " | ".join(verdict.reasons)


@pytest.mark.parametrize(("source", "expected"), [
    ("ADD\nHALT\n", "stack underflow at offset 0: ADD needs 2 value(s), the stack holds 0"),
    ("l: PUSH 1\nJMP l\n", "inconsistent stack depth at offset 0"),
    ("SENSE 0\nACT 0\n", "execution can run past the end of the code"),
    ("l: NOP\nJMP l\n", "infinite loop: no HALT or RET is reachable from offset 0"),
    ("CALL f\nHALT\nf: CALL f\nRET\n", "recursive CALL into offset"),
    ("LOAD 16\nHALT\n", "uses memory slot 16"),
    ("PARAM 0\nHALT\n", "uses parameter 0; the program declares 0"),
    ("JMP 1\nHALT\n", "targets 1, not an instruction boundary"),
    ("JMP 999\n", "targets 999, not an instruction boundary"),
    ("l: CALL f\nJMP l\nf: RET\n", "infinite loop"),
    ("CALL f\nHALT\nf: SENSE 0\nJZ a\nRET\na: PUSH 1\nRET\n", "returns with different stack depths"),
])
def test_each_unsafe_class_is_rejected_with_its_reason(source: str, expected: str) -> None:
    assert expected in reasons(source)


def test_loops_that_can_exit_are_allowed() -> None:
    verdict = verify(assemble("SENSE 0\nl: DEC\nDUP\nJNZ l\nPOP\nHALT\n"))
    assert verdict.ok, verdict.reasons
    assert verdict.max_depth == 2


def test_unbounded_stack_depth_is_rejected() -> None:
    source = "PUSH 0\n" * 257 + "HALT\n"
    assert "stack depth can reach 257; the bound is 256" in reasons(source)


def test_decode_errors_are_reasons() -> None:
    assert "unknown opcode 0xee at offset 1" in " ".join(verify(Image(b"\x00\xee")).reasons)
    assert "missing operand bytes" in " ".join(verify(Image(b"\x01\x00")).reasons)
    assert "program is empty" in verify(Image(b"")).reasons


def test_size_bound_is_enforced() -> None:
    image = Image(b"\x00" * 4096 + b"\x35")
    assert "the size bound is 4096" in " ".join(verify(image).reasons)
    assert verify(image, max_bytes=8192).ok


def test_every_reason_is_listed() -> None:
    verdict = verify(assemble("LOAD 20\nPARAM 3\nJMP 3\nHALT\n"))
    assert len(verdict.reasons) == 3


def test_callee_reads_its_callers_stack() -> None:
    assert verify(assemble("PUSH 2\nPUSH 3\nCALL add\nACT 0\nHALT\nadd: ADD\nRET\n")).ok
    assert "CALL needs 2 value(s), the stack holds 1" in reasons(
        "PUSH 2\nCALL add\nACT 0\nHALT\nadd: ADD\nRET\n")


@given(verified_programs())
def test_generated_programs_verify(program: Program) -> None:
    assert verify(program.to_image()).ok
