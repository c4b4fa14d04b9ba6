"""Assembler and disassembler: exact round trips, and errors that name the line."""

from __future__ import annotations

import pytest
from flux_strategies import any_programs, verified_programs
from hypothesis import given

from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.isa import Image, Opcode
from ouroboros.capabilities.flux.program import Program


@given(any_programs())
def test_disassembly_assembles_back_to_the_same_bytes(program: Program) -> None:
    image = program.to_image()
    assert assemble(disassemble(image)) == image


@given(verified_programs())
def test_disassembly_is_a_fixed_point(program: Program) -> None:
    text = disassemble(program.to_image())
    assert disassemble(assemble(text)) == text


def test_undecodable_bytes_survive_the_round_trip() -> None:
    image = Image(bytes([0x00, 0xEE, 0x01, 0x02]), ())
    assert assemble(disassemble(image)) == image


def test_syntax_labels_comments_params_and_case() -> None:
    image = assemble("""
        ; leading comment
        .param rate 900
        start: sense 0   ; inline comment
        Push 0x10
        decay 1, rate
        jmp end
        end: HALT
    """)
    assert image.params == (900,)
    program = Program.from_image(image)
    assert [i.op for i in program.instrs] == [Opcode.SENSE, Opcode.PUSH, Opcode.DECAY,
                                              Opcode.JMP, Opcode.HALT]
    assert program.instrs[1].args == (16,)
    assert program.instrs[2].args == (1, 0)
    assert program.instrs[3].args == (4,)  # instruction index of `end`


@pytest.mark.parametrize(("source", "line", "message"), [
    ("NOP\nFROB 1\n", 2, "unknown mnemonic 'FROB'"),
    ("NOP\n\nPUSH\n", 3, "PUSH is missing an operand"),
    ("JMP nowhere\n", 1, "undefined label 'nowhere'"),
    ("a: NOP\na: HALT\n", 2, "label 'a' defined twice"),
    ("PUSH 1 2\n", 1, "PUSH takes 1 operand(s)"),
    ("PUSH 99999999999\n", 1, "outside"),
    ("LOAD x\n", 1, "LOAD operand 'x' must be an integer"),
    ("THRESH t\n", 1, "undefined parameter 't'"),
    (".param 9 9\n", 1, "bad parameter name"),
    (".param a zz\n", 1, "is not a 64-bit integer"),
    (".byte 300\n", 1, ".byte needs one value"),
])
def test_errors_name_the_line(source: str, line: int, message: str) -> None:
    with pytest.raises(AssemblyError) as info:
        assemble(source)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"line {line}:")


def test_oversized_program_is_refused_at_the_line_that_crosses_the_bound() -> None:
    source = "PUSH 1\n" * 1000  # 5 bytes each
    with pytest.raises(AssemblyError) as info:
        assemble(source)
    assert info.value.line == 820
    assert "size bound of 4096 bytes" in str(info.value)


def test_image_bytes_round_trip_and_reject_garbage() -> None:
    image = assemble(".param a -5\nPARAM a\nACT 0\nHALT\n")
    assert Image.from_bytes(image.to_bytes()) == image
    assert image.to_hex().startswith("464c5558")
    with pytest.raises(ValueError, match="magic"):
        Image.from_bytes(b"NOPE")
    with pytest.raises(ValueError, match="truncated"):
        Image.from_bytes(image.to_bytes()[:8])
