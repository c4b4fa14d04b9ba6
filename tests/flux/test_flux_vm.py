"""The reference interpreter: semantics from docs/flux.md, and traps as results."""

from __future__ import annotations

import pytest

from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.isa import INT64_MAX, INT64_MIN, Image
from ouroboros.capabilities.flux.vm import run


def out(source: str, *inputs: int) -> tuple[int, ...]:
    result = run(assemble(source), inputs)
    assert result.halted, result.trap
    return result.output


@pytest.mark.parametrize(("source", "inputs", "expected"), [
    ("SENSE 0\nSENSE 1\nSUB\nACT 0\nHALT", (3, 10), (-7,)),
    ("SENSE 0\nSENSE 1\nDIV\nACT 0\nHALT", (-7, 2), (-3,)),  # truncates toward zero
    ("SENSE 0\nSENSE 1\nMOD\nACT 0\nHALT", (-7, 2), (-1,)),  # sign of the dividend
    ("SENSE 0\nSENSE 1\nDIV\nACT 0\nHALT", (INT64_MIN, -1), (INT64_MIN,)),
    ("SENSE 0\nSENSE 1\nMOD\nACT 0\nHALT", (INT64_MIN, -1), (0,)),
    ("SENSE 0\nINC\nACT 0\nHALT", (INT64_MAX,), (INT64_MIN,)),  # wraps
    ("SENSE 0\nSENSE 1\nMUL\nACT 0\nHALT", (1 << 62, 4), (0,)),
    ("SENSE 0\nPUSH 65\nSHL\nACT 0\nHALT", (1,), (2,)),  # shift count & 63
    ("SENSE 0\nPUSH 1\nSHR\nACT 0\nHALT", (-5,), (-3,)),  # arithmetic
    ("SENSE 0\nNOT\nACT 0\nHALT", (0,), (-1,)),
    ("SENSE 0\nSENSE 1\nOVER\nACT 0\nACT 0\nACT 0\nHALT", (1, 2), (1, 2, 1)),
    ("SENSE 0\nSENSE 1\nSWAP\nACT 0\nACT 0\nHALT", (1, 2), (1, 2)),
    ("SENSE 0\nSENSE 1\nLT\nSENSE 0\nSENSE 1\nGT\nSENSE 0\nSENSE 0\nEQ\nACT 0\nACT 0\nACT 0\nHALT",
     (1, 2), (1, 0, 1)),
    ("SENSE 7\nACT 0\nHALT", (1,), (0,)),  # absent input reads 0
    ("INSTINCT 1\nHALT", (4, 5), (5,)),
    (".param k 900\nSENSE 0\nSTORE 3\nDECAY 3, k\nLOAD 3\nACT 0\nHALT", (-105,), (-94,)),
    (".param t 10\nSENSE 0\nTHRESH t\nACT 0\nSENSE 1\nTHRESH t\nACT 0\nHALT", (10, 9), (1, 0)),
    ("PUSH 5\nCALL f\nACT 0\nHALT\nf: INC\nRET", (), (6,)),
    ("SENSE 0\nACT 0\nRET\nPUSH 9\nACT 0\nHALT", (3,), (3,)),  # RET from main halts
])
def test_semantics(source: str, inputs: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert out(source, *inputs) == expected


def test_channels_and_cycles_follow_the_table() -> None:
    result = run(assemble("SENSE 0\nACT 2\nPUSH 1\nACT 0\nHALT"), [7])
    assert result.output == (7, 1)
    assert result.channels == (2, 0)
    assert result.cycles == 2 + 2 + 1 + 2 + 1
    assert result.steps == 5
    assert result.to_json() == {"output": [7, 1], "cycles": 8, "halted": True, "trap": None}


@pytest.mark.parametrize(("image", "trap"), [
    (assemble("SENSE 0\nPUSH 0\nDIV\nHALT"), "division_by_zero"),
    (assemble("SENSE 0\nPUSH 0\nMOD\nHALT"), "division_by_zero"),
    (assemble("ADD\nHALT"), "stack_underflow"),
    (assemble("l: PUSH 1\nJMP l"), "stack_overflow"),
    (assemble("l: JMP l"), "fuel_exhausted"),
    (assemble("f: CALL f"), "call_overflow"),
    (assemble("JMP 99"), "bad_jump"),
    (assemble("NOP"), "bad_jump"),  # ran off the end
    (Image(b"\xee"), "bad_opcode"),
    (assemble("LOAD 99\nHALT"), "bad_operand"),
    (assemble("PARAM 3\nHALT"), "bad_operand"),
])
def test_traps_are_results_never_exceptions(image: Image, trap: str) -> None:
    result = run(image, [5], fuel=10_000)
    assert result.trap == trap
    assert not result.halted


def test_fuel_exhaustion_stops_before_the_instruction_that_does_not_fit() -> None:
    result = run(assemble("PUSH 1\nPUSH 2\nMUL\nHALT"), fuel=4)  # MUL costs 3
    assert result.trap == "fuel_exhausted"
    assert result.cycles == 2
    assert result.steps == 2


def test_output_emitted_before_a_trap_is_kept() -> None:
    result = run(assemble("PUSH 4\nACT 0\nPUSH 0\nPUSH 0\nDIV\nHALT"))
    assert result.output == (4,)
    assert result.trap == "division_by_zero"
    assert result.cycles == 1 + 2 + 1 + 1 + 8
