"""The seed's seven FLUX mutation types, proposed by policy, plus crossover.

`propose` picks a type by the policy's weights among those that apply to the program,
applies it with the safety rules (size bound, valid opcodes by construction, jump
re-targeting through `Program.replace`) and returns the candidate. Whether the
candidate is *valid* is the verifier's call, made by the caller, never assumed here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from ouroboros.capabilities.flux import rewrites
from ouroboros.capabilities.flux.isa import MAX_CODE_BYTES, MEMORY_SLOTS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program


class MutationType(StrEnum):
    OPTIMIZE_OPCODE = "OptimizeOpcode"
    INSERT_NOP = "InsertNOP"
    PATCH_JUMP = "PatchJump"
    REPLACE_SEQUENCE = "ReplaceSequence"
    ADD_INSTINCT = "AddInstinct"
    ADJUST_DECAY = "AdjustDecay"
    TUNE_THRESHOLD = "TuneThreshold"


DEFAULT_WEIGHTS: Mapping[MutationType, float] = {
    MutationType.OPTIMIZE_OPCODE: 3.0,
    MutationType.REPLACE_SEQUENCE: 6.0,
    MutationType.INSERT_NOP: 0.25,
    MutationType.PATCH_JUMP: 0.5,
    MutationType.ADD_INSTINCT: 0.25,
    MutationType.ADJUST_DECAY: 1.0,
    MutationType.TUNE_THRESHOLD: 1.0,
}

_POOL = (Opcode.DUP, Opcode.POP, Opcode.SWAP, Opcode.OVER, Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.NEG, Opcode.INC, Opcode.DEC, Opcode.AND,
         Opcode.OR, Opcode.XOR, Opcode.NOT, Opcode.SHL, Opcode.SHR, Opcode.EQ, Opcode.LT, Opcode.GT)


@dataclass(frozen=True)
class Mutation:
    kind: MutationType
    detail: str
    program: Program


class Proposer:
    """Draws random instructions from what the program already uses (inputs, slots,
    constants), which keeps the search inside the program's own vocabulary."""

    def __init__(self, weights: Mapping[MutationType, float] | None = None,
                 max_bytes: int = MAX_CODE_BYTES, seed_table: bool = False) -> None:
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.max_bytes = max_bytes
        self.seed_table = seed_table  # OptimizeOpcode with the seed's rewrite table only

    def propose(self, program: Program, rng: random.Random) -> Mutation | None:
        kinds = [k for k in MutationType if self.weights.get(k, 0) > 0
                 and _applies(k, program, self.seed_table)]
        if not kinds:
            return None
        kind = rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        mutation = _OPERATORS[kind](self, program, rng)
        if mutation is None or mutation.program.size > self.max_bytes:
            return None
        return mutation

    def random_instr(self, program: Program, rng: random.Random) -> Instr:
        roll = rng.random()
        if roll < 0.25:
            consts = {-1, 0, 1, 2, 3} | {i.args[0] for i in program.instrs if i.op is Opcode.PUSH}
            return Instr(Opcode.PUSH, (rng.choice(sorted(consts)),))
        if roll < 0.35:
            inputs = sorted({i.args[0] for i in program.instrs if i.op is Opcode.SENSE} or {0})
            return Instr(Opcode.SENSE, (rng.choice(inputs),))
        if roll < 0.42:
            slots = sorted({i.args[0] for i in program.instrs if i.op in (Opcode.LOAD, Opcode.STORE)} or {0})
            return Instr(rng.choice((Opcode.LOAD, Opcode.STORE)), (rng.choice(slots) % MEMORY_SLOTS,))
        return Instr(rng.choice(_POOL))


Operator = Callable[[Proposer, Program, random.Random], "Mutation | None"]


def _applies(kind: MutationType, program: Program, seed_table: bool = False) -> bool:
    ops = {i.op for i in program.instrs}
    if kind is MutationType.OPTIMIZE_OPCODE:
        return next(rewrites.sites(program, seed_table=seed_table), None) is not None
    if kind is MutationType.PATCH_JUMP:
        return any(i.is_jump for i in program.instrs)
    if kind is MutationType.ADJUST_DECAY:
        return Opcode.DECAY in ops
    if kind is MutationType.TUNE_THRESHOLD:
        return Opcode.THRESH in ops
    return len(program) > 0


def _optimize(self: Proposer, program: Program, rng: random.Random) -> Mutation | None:
    site = rng.choice(list(rewrites.sites(program, seed_table=self.seed_table)))
    old = program.instrs[site.index:site.index + site.width]
    return Mutation(MutationType.OPTIMIZE_OPCODE,
                    f"{'; '.join(map(str, old))} -> {'; '.join(map(str, site.replacement)) or '(nothing)'}",
                    rewrites.apply_site(program, site))


def _insert_nop(self: Proposer, program: Program, rng: random.Random) -> Mutation:
    index = rng.randrange(len(program) + 1)
    return Mutation(MutationType.INSERT_NOP, f"NOP at {index}",
                    program.insert(index, (Instr(Opcode.NOP),)))


def _patch_jump(self: Proposer, program: Program, rng: random.Random) -> Mutation:
    sites = [i for i, ins in enumerate(program.instrs) if ins.is_jump]
    index = rng.choice(sites)
    target = rng.randrange(len(program))
    ins = program.instrs[index]
    new = Instr(ins.op, (target,))
    return Mutation(MutationType.PATCH_JUMP, f"{ins.op.name} at {index} -> {target}",
                    Program((*program.instrs[:index], new, *program.instrs[index + 1:]),
                            program.params))


def _replace_sequence(self: Proposer, program: Program, rng: random.Random) -> Mutation:
    start = rng.randrange(len(program))
    count = min(rng.choice((1, 1, 2, 2, 3)), len(program) - start)
    if program.instrs[start + count - 1].op in (Opcode.HALT, Opcode.RET):
        count -= 1  # keep the exit; the edit becomes an insertion before it
    size = rng.choice((0, 0, 1, 1, 1, 2))
    new = tuple(self.random_instr(program, rng) for _ in range(size))
    old = program.instrs[start:start + count]
    return Mutation(MutationType.REPLACE_SEQUENCE,
                    f"{'; '.join(map(str, old))} at {start} -> {'; '.join(map(str, new)) or '(nothing)'}",
                    program.replace(start, count, new))


def _add_instinct(self: Proposer, program: Program, rng: random.Random) -> Mutation:
    index = rng.randrange(len(program) + 1)
    inputs = sorted({i.args[0] for i in program.instrs if i.op is Opcode.SENSE} or {0})
    channel = rng.choice(inputs)
    pattern: tuple[Instr, ...] = (Instr(Opcode.SENSE, (channel,)), Instr(Opcode.ACT, (channel,)))
    if rng.random() < 0.5:
        pattern = (Instr(Opcode.INSTINCT, (channel,)),)
    return Mutation(MutationType.ADD_INSTINCT, f"{'; '.join(map(str, pattern))} at {index}",
                    program.insert(index, pattern))


def _tune(kind: MutationType, op: Opcode, position: int, steps: tuple[int, ...]) -> Operator:
    def operator(self: Proposer, program: Program, rng: random.Random) -> Mutation:
        used = sorted({i.args[position] for i in program.instrs if i.op is op})
        index = rng.choice(used)
        delta = rng.choice(steps)
        params = list(program.params)
        params[index] += delta
        return Mutation(kind, f"param {index}: {program.params[index]} -> {params[index]}",
                        program.with_params(tuple(params)))
    return operator


_OPERATORS: dict[MutationType, Operator] = {
    MutationType.OPTIMIZE_OPCODE: _optimize,
    MutationType.INSERT_NOP: _insert_nop,
    MutationType.PATCH_JUMP: _patch_jump,
    MutationType.REPLACE_SEQUENCE: _replace_sequence,
    MutationType.ADD_INSTINCT: _add_instinct,
    MutationType.ADJUST_DECAY: _tune(MutationType.ADJUST_DECAY, Opcode.DECAY, 1,
                                     (-100, -25, -5, -1, 1, 5, 25, 100)),
    MutationType.TUNE_THRESHOLD: _tune(MutationType.TUNE_THRESHOLD, Opcode.THRESH, 0,
                                       (-10, -3, -1, 1, 3, 10)),
}


def breed(a: Program, b: Program, rng: random.Random) -> Program:
    """One-point crossover at instruction boundaries: a[:i] + b[j:], jumps repaired.

    Jumps from a's part keep their target if it survives, else go to the join point;
    jumps from b's part move with their code, or go to the join point if their target
    was cut away. Every jump of the child lands on one of its instructions.
    """
    i = rng.randrange(len(a) + 1)
    j = rng.randrange(len(b)) if len(b) else 0
    head, tail = a.instrs[:i], b.instrs[j:]
    last = max(0, len(head) + len(tail) - 1)

    def fix(ins: Instr, target: int) -> Instr:
        return Instr(ins.op, (min(max(target, 0), last),)) if ins.is_jump else ins

    child = [fix(ins, ins.args[0] if ins.args[0] < i else i) if ins.is_jump else ins
             for ins in head]
    child += [fix(ins, ins.args[0] - j + i if ins.args[0] >= j else i) if ins.is_jump else ins
              for ins in tail]
    params = a.params if len(a.params) >= len(b.params) else b.params
    return Program(tuple(child), params)
