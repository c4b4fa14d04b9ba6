"""Jump re-targeting, crossover repair, genome round trips, peephole soundness."""

from __future__ import annotations

import random

import pytest
from flux_strategies import any_programs, inputs, verified_programs
from hypothesis import assume, given
from hypothesis import strategies as st

from ouroboros.capabilities.flux import genome
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.isa import Opcode, decode_code
from ouroboros.capabilities.flux.mutations import breed
from ouroboros.capabilities.flux.program import Instr, Program, strip_nops
from ouroboros.capabilities.flux.rewrites import peephole
from ouroboros.capabilities.flux.verifier import verify, verify_instructions
from ouroboros.capabilities.flux.vm import run

LOOP = Program.from_image(assemble("SENSE 0\nl: DEC\nDUP\nJNZ l\nACT 0\nHALT"))


def landing(program: Program) -> list[Opcode]:
    """The opcode each jump lands on, in program order."""
    return [program.instrs[i.args[0]].op for i in program.instrs if i.is_jump]


@given(verified_programs(), st.data())
def test_insert_keeps_every_jump_on_its_instruction(program: Program, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(program)))
    new = program.insert(index, (Instr(Opcode.NOP), Instr(Opcode.NOP)))
    assert len(new) == len(program) + 2
    assert landing(new) == landing(program)
    for old, moved in zip(program.instrs, new.instrs[:index] + new.instrs[index + 2:], strict=True):
        if old.is_jump:
            assert moved.args[0] == (old.args[0] + 2 if old.args[0] >= index else old.args[0])
    assert verify(new.to_image()).ok


@given(verified_programs(), st.data())
def test_delete_sends_jumps_to_what_followed(program: Program, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(program) - 1))
    new = program.delete(index)
    for old, moved in zip(program.instrs[:index] + program.instrs[index + 1:], new.instrs,
                          strict=True):
        if old.is_jump:
            t = old.args[0]
            assert moved.args[0] == (t if t < index else index if t == index else t - 1)


def test_byte_offsets_are_recomputed_after_an_insert() -> None:
    image = LOOP.insert(1, (Instr(Opcode.PUSH, (0,)), Instr(Opcode.POP))).to_image()
    assert run(image, [3]).output == run(LOOP.to_image(), [3]).output
    assert image.code[10:13] == bytes([0x32, 8, 0])  # JNZ now targets offset 8 (was 2)


@given(verified_programs(), verified_programs(), st.integers(0, 2**32))
def test_breed_repairs_every_jump(a: Program, b: Program, seed: int) -> None:
    child = breed(a, b, random.Random(seed))
    for ins in child.instrs:
        if ins.is_jump:
            assert 0 <= ins.args[0] < len(child)
    assert all(ins in a.instrs or ins.is_jump or ins in b.instrs for ins in child.instrs)


@given(verified_programs())
def test_genome_round_trips(program: Program) -> None:
    encoded = genome.encode(program)
    assert genome.decode(encoded) == strip_nops(program)
    assert genome.encode(genome.decode(encoded)) == encoded


def test_genome_folds_repeats_drops_nops_and_extracts_loops() -> None:
    program = Program.from_image(assemble(
        "SENSE 0\nNOP\nINC\nINC\nINC\nl: DEC\nDUP\nJNZ l\nACT 0\nHALT"))
    g = genome.encode(program)
    kinds = [type(x).__name__ for x in g.genes]
    assert kinds == ["Op", "Repeat", "Loop", "Op", "Op"]
    assert g.genes[1] == genome.Repeat((genome.Op(Instr(Opcode.INC)),), 3)
    assert g.genes[2] == genome.Loop((genome.Op(Instr(Opcode.DEC)), genome.Op(Instr(Opcode.DUP))),
                                     Opcode.JNZ)


@given(verified_programs(), st.integers(0, 2**32))
def test_genome_mutations_decode_to_programs(program: Program, seed: int) -> None:
    mutated, kind = genome.mutate(genome.encode(program), random.Random(seed))
    assert kind in {"substitute", "amplify", "prune", "none"}
    decoded = genome.decode(mutated)
    assert all(0 <= i.args[0] <= len(decoded) for i in decoded.instrs if i.is_jump)


@given(verified_programs(), inputs)
def test_peephole_rewrites_preserve_behaviour(program: Program, values: list[int]) -> None:
    optimised, _ = peephole(program)
    assume(verify(optimised.to_image()).ok)
    before = run(program.to_image(), values, fuel=3000)
    after = run(optimised.to_image(), values, fuel=3000)
    assume(before.trap != "fuel_exhausted")  # a faster program emits more before fuel ends
    assert after.output == before.output
    assert after.trap == before.trap
    assert after.cycles <= before.cycles


def test_peephole_on_a_known_case() -> None:
    program = Program.from_image(assemble("SENSE 0\nPUSH 0\nADD\nPUSH 8\nMUL\nNOP\nACT 0\nHALT"))
    optimised, steps = peephole(program)
    assert [str(i) for i in optimised.instrs] == ["SENSE 0", "PUSH 3", "SHL", "ACT 0", "HALT"]
    assert steps == 3


@given(any_programs())
def test_decoded_view_equals_decoding_the_encoding(program: Program) -> None:
    image = program.to_image()
    assert list(program.decoded()) == decode_code(image.code)
    direct = verify_instructions(program.decoded(), program.params, program.size)
    assert direct == verify(image)


def test_decoded_view_refuses_unencodable_operands() -> None:
    with pytest.raises(ValueError, match="outside"):
        Program((Instr(Opcode.PUSH, (1 << 40,)), Instr(Opcode.HALT))).decoded()
