"""Programs as instruction lists: the form mutation, crossover and the genome work on.

Jump operands here are *instruction indices*, not byte offsets, so inserting or deleting
instructions is a list edit plus one re-targeting rule (below), and encoding to bytes
recomputes every offset. That is what keeps the jump table consistent under mutation.

Re-targeting rule: a jump keeps pointing at the same instruction. Inserting at k shifts
targets >= k; deleting [k, k+n) sends targets inside the deleted range to the
instruction that now sits at k (the code that followed it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ouroboros.capabilities.flux.isa import (
    JUMPS,
    OPS,
    Decoded,
    DecodeError,
    Image,
    Opcode,
    decode_code,
    encode_instruction,
    operand_range,
)


@dataclass(frozen=True)
class Instr:
    op: Opcode
    args: tuple[int, ...] = ()

    @property
    def is_jump(self) -> bool:
        return self.op in JUMPS

    @property
    def size(self) -> int:
        return OPS[self.op].size

    def __str__(self) -> str:
        return self.op.name + (" " + ", ".join(map(str, self.args)) if self.args else "")


@dataclass(frozen=True)
class Program:
    instrs: tuple[Instr, ...]
    params: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.instrs)

    @property
    def size(self) -> int:
        return sum(ins.size for ins in self.instrs)

    def to_image(self) -> Image:
        """Encode; a target index equal to len() encodes as the end of the code."""
        offsets = [0]
        for ins in self.instrs:
            offsets.append(offsets[-1] + ins.size)
        code = bytearray()
        for ins in self.instrs:
            args = ins.args
            if ins.is_jump:
                target = args[0]
                args = (offsets[target] if 0 <= target < len(offsets) else 0xFFFF,)
            code += _encode(ins.op, args)
        return Image(bytes(code), self.params)

    def decoded(self) -> tuple[Decoded, ...]:
        """The instructions as the verifier sees them, without encoding to bytes.

        Raises ValueError for an operand its encoding could not hold.
        """
        offsets = [0]
        for ins in self.instrs:
            offsets.append(offsets[-1] + OPS[ins.op].size)
        out = []
        for offset, ins in zip(offsets, self.instrs, strict=False):
            args = ins.args
            if ins.op in JUMPS:
                t = args[0]
                args = (offsets[t] if 0 <= t < len(offsets) else 0xFFFF,)
            else:
                for kind, value in zip(OPS[ins.op].operands, args, strict=True):
                    lo, hi = operand_range(kind)
                    if not lo <= value <= hi:
                        raise ValueError(f"{ins.op.name} operand {value} outside [{lo}, {hi}]")
            out.append(Decoded(offset, ins.op, args))
        return tuple(out)

    @classmethod
    def from_image(cls, image: Image) -> Program:
        """Decode; raises ValueError unless every jump lands on an instruction boundary."""
        try:
            decoded = decode_code(image.code)
        except DecodeError as exc:
            raise ValueError(str(exc)) from exc
        index = {ins.offset: i for i, ins in enumerate(decoded)}
        index[len(image.code)] = len(decoded)
        instrs = []
        for ins in decoded:
            args = ins.args
            if ins.opcode in JUMPS:
                if args[0] not in index:
                    raise ValueError(f"{ins.opcode.name} at offset {ins.offset} targets "
                                     f"{args[0]}, not an instruction boundary")
                args = (index[args[0]],)
            instrs.append(Instr(ins.opcode, args))
        return cls(tuple(instrs), image.params)

    def replace(self, start: int, count: int, new: Sequence[Instr]) -> Program:
        """Replace instrs[start:start+count] with `new`, re-targeting every jump.

        Jumps inside `new` are taken as already pointing where they should (indices in
        the resulting program).
        """
        shift = len(new) - count
        end = start + count

        def retarget(t: int) -> int:
            if t < start:
                return t
            if t < end:
                return start
            return t + shift

        kept = [_with_target(ins, retarget) for ins in self.instrs]
        return Program((*kept[:start], *new, *kept[end:]), self.params)

    def insert(self, index: int, new: Sequence[Instr]) -> Program:
        return self.replace(index, 0, new)

    def delete(self, index: int, count: int = 1) -> Program:
        return self.replace(index, count, ())

    def with_params(self, params: tuple[int, ...]) -> Program:
        return Program(self.instrs, params)


@lru_cache(maxsize=65536)
def _encode(op: Opcode, args: tuple[int, ...]) -> bytes:
    return encode_instruction(op, args)


def _with_target(ins: Instr, retarget: object) -> Instr:
    if not ins.is_jump:
        return ins
    assert callable(retarget)
    return Instr(ins.op, (retarget(ins.args[0]),))


def jump_targets(program: Program) -> set[int]:
    return {ins.args[0] for ins in program.instrs if ins.is_jump}


def strip_nops(program: Program) -> Program:
    """Remove every NOP (jumps to a NOP land on what followed it)."""
    result = program
    for i in range(len(program) - 1, -1, -1):
        if program.instrs[i].op is Opcode.NOP:
            result = result.delete(i)
    return result
