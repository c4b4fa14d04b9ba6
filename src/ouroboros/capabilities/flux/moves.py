"""The search's moves: small edits of an instruction list, one or several at a time.

| move | what it does |
|---|---|
| `opcode` | replaces an instruction by another with the same net stack effect (so SENSE may become DUP, ADD may become POP); now and then by any instruction |
| `operand` | tweaks an operand: an input, slot or channel index, or a constant (+-1, +-2, negated, doubled, halved, or one from the constant pool) |
| `swap` | exchanges two instructions |
| `move` | takes an instruction out and puts it elsewhere |
| `insert` / `delete` | adds a random instruction / removes 1-3 consecutive ones |
| `replace` | replaces 1-3 instructions with 0-2 random ones |
| `peephole` | one sound rewrite that saves cycles (`rewrites.sites`: the table, common subexpressions, dead stores) |
| `rewrite` | one sound rewrite that costs the same but opens a way (store-to-load forwarding, commuting two pushes) |
| `cleanup` | a dead STORE becomes POP, or every unreachable instruction goes |
| `branch` | retargets a jump, flips JZ/JNZ, or drops a conditional branch (its test is popped) |
| `multi` | two or three of the above at once, to cross two-edit valleys |

Every random choice comes from the `random.Random` passed in, so a seed fixes the walk.
Terminators (HALT, RET) are never removed or moved: a program keeps its exits. Jumps
keep pointing at the same instruction through every edit (`Program.replace`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ouroboros.capabilities.flux import analysis, rewrites
from ouroboros.capabilities.flux.isa import JUMPS, MAX_CODE_BYTES, OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program

_CONTROL = JUMPS | {Opcode.HALT, Opcode.RET}
_I32 = (-(1 << 31), (1 << 31) - 1)

# Instructions grouped by net stack effect (pushes - pops), for replacements that keep
# the depth everywhere after them: SENSE 0 may become DUP, ADD may become POP.
_EFFECT: dict[int, tuple[Opcode, ...]] = {}
for _op, _info in OPS.items():
    if _op not in _CONTROL and _op is not Opcode.DECAY:
        _EFFECT[_info.pushes - _info.pops] = (*_EFFECT.get(_info.pushes - _info.pops, ()), _op)

_ALU = (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.AND, Opcode.OR, Opcode.XOR, Opcode.SHL,
        Opcode.SHR, Opcode.EQ, Opcode.LT, Opcode.GT, Opcode.NEG, Opcode.INC, Opcode.DEC,
        Opcode.NOT, Opcode.DUP, Opcode.POP, Opcode.SWAP, Opcode.OVER)


_STACK = (Opcode.DUP, Opcode.OVER, Opcode.SWAP, Opcode.POP)
ANY_OPCODE = 0.2
_ANY = (*_ALU, Opcode.PUSH, Opcode.SENSE, Opcode.LOAD, Opcode.STORE, Opcode.INSTINCT)


@dataclass(frozen=True)
class Vocabulary:
    """What random instructions may use: the original program's inputs, slots, channels,
    parameters and a constant pool derived from its constants."""

    inputs: tuple[int, ...]
    slots: tuple[int, ...]
    channels: tuple[int, ...]
    params: int
    constants: tuple[int, ...]

    @classmethod
    def of(cls, program: Program) -> Vocabulary:
        def used(*ops: Opcode) -> tuple[int, ...]:
            return tuple(sorted({i.args[0] for i in program.instrs if i.op in ops}))

        base = {i.args[0] for i in program.instrs if i.op is Opcode.PUSH}
        pool = set(base) | {-1, 0, 1, 2, 3, 63}
        for a in base:
            pool.update((-a, a + 1, a - 1, a * 2))
            if a > 0 and a & (a - 1) == 0:
                pool.add(a.bit_length() - 1)  # the shift for a power of two
            for b in base:
                pool.update((a + b, a - b, a * b))
                if b:
                    pool.add(int(a / b))
        constants = tuple(sorted(c for c in pool if _I32[0] <= c <= _I32[1]))
        return cls(used(Opcode.SENSE, Opcode.INSTINCT) or (0,),
                   used(Opcode.LOAD, Opcode.STORE) or (0,),
                   used(Opcode.ACT, Opcode.INSTINCT) or (0,),
                   len(program.params), constants)

    def instruction(self, rng: random.Random) -> Instr:
        roll = rng.random()
        if roll < 0.2:
            return Instr(Opcode.PUSH, (rng.choice(self.constants),))
        if roll < 0.35:
            return Instr(Opcode.SENSE, (rng.choice(self.inputs),))
        if roll < 0.42:
            return Instr(rng.choice((Opcode.LOAD, Opcode.STORE)), (rng.choice(self.slots),))
        if roll < 0.45:
            return Instr(Opcode.INSTINCT, (rng.choice(self.inputs),))
        if roll < 0.65:
            return Instr(rng.choice(_STACK))  # a stack machine lives on these
        return Instr(rng.choice(_ALU))

    def same_effect(self, ins: Instr, rng: random.Random) -> Instr:
        info = OPS[ins.op]
        op = rng.choice(_EFFECT.get(info.pushes - info.pops, (ins.op,)))
        return self.with_fresh_operand(op, ins, rng)

    def with_fresh_operand(self, op: Opcode, like: Instr, rng: random.Random) -> Instr:
        if op is Opcode.PUSH:
            return Instr(op, (rng.choice(self.constants),))
        if op in (Opcode.SENSE, Opcode.INSTINCT):
            return Instr(op, (rng.choice(self.inputs),))
        if op in (Opcode.LOAD, Opcode.STORE):
            return Instr(op, (rng.choice(self.slots),))
        if op is Opcode.ACT:
            return Instr(op, (rng.choice(self.channels),))
        if op in (Opcode.PARAM, Opcode.THRESH):
            if not self.params:
                return like
            return Instr(op, (rng.randrange(self.params),))
        return Instr(op)


Move = Callable[[Program, Vocabulary, random.Random], "Program | None"]


def _editable(program: Program) -> list[int]:
    return [i for i, ins in enumerate(program.instrs) if ins.op not in _CONTROL]


def _set(program: Program, index: int, ins: Instr) -> Program:
    return Program((*program.instrs[:index], ins, *program.instrs[index + 1:]), program.params)


def opcode(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = _editable(program)
    if not sites:
        return None
    i = rng.choice(sites)
    if rng.random() < ANY_OPCODE:  # a different stack effect: a new shape, often invalid
        return _set(program, i, vocab.with_fresh_operand(rng.choice(_ANY), program.instrs[i],
                                                         rng))
    return _set(program, i, vocab.same_effect(program.instrs[i], rng))


def operand(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = [i for i, ins in enumerate(program.instrs) if ins.args and ins.op not in JUMPS]
    if not sites:
        return None
    i = rng.choice(sites)
    ins = program.instrs[i]
    if ins.op is Opcode.PUSH:
        k = ins.args[0]
        value = rng.choice((k + 1, k - 1, k + 2, k - 2, -k, k * 2, k // 2,
                            rng.choice(vocab.constants), rng.choice(vocab.constants)))
        if not _I32[0] <= value <= _I32[1]:
            return None
        return _set(program, i, Instr(Opcode.PUSH, (value,)))
    if ins.op is Opcode.DECAY:
        return None
    return _set(program, i, vocab.with_fresh_operand(ins.op, ins, rng))


def swap(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = _editable(program)
    if len(sites) < 2:
        return None
    i, j = rng.sample(sites, 2)
    instrs = list(program.instrs)
    instrs[i], instrs[j] = instrs[j], instrs[i]
    return Program(tuple(instrs), program.params)


def move(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = _editable(program)
    if not sites:
        return None
    i = rng.choice(sites)
    ins = program.instrs[i]
    removed = program.delete(i)
    j = rng.randrange(len(removed) + 1)
    if j == i:
        return None
    return removed.insert(j, (ins,))


def insert(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    """Insert before a reachable instruction (code after HALT would be dead on arrival)."""
    sites = sorted(analysis.reachable(program))
    if not sites:
        return None
    return program.insert(rng.choice(sites), (vocab.instruction(rng),))


def delete(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    """Remove 1-3 consecutive instructions, jumps included (never an exit)."""
    sites = [i for i, ins in enumerate(program.instrs) if ins.op not in (Opcode.HALT, Opcode.RET)]
    if not sites:
        return None
    i = rng.choice(sites)
    n = 1
    width = rng.choice((1, 1, 2, 2, 3))
    while n < width and i + n in sites:
        n += 1
    return program.delete(i, n)


def replace(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = _editable(program)
    if not sites:
        return None
    i = rng.choice(sites)
    n = 1
    width = rng.choice((1, 2, 3))
    while n < width and i + n in sites:
        n += 1
    new = tuple(vocab.instruction(rng) for _ in range(rng.choice((0, 1, 1, 2))))
    return program.replace(i, n, new)


def peephole(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = list(rewrites.sites(program))
    if not sites:
        return None
    return rewrites.apply_site(program, rng.choice(sites))


def rewrite(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    """A same-cost sound rewrite (store-to-load forwarding, commuting two pushes)."""
    sites = list(rewrites.neutral_sites(program))
    if not sites:
        return None
    return rewrites.apply_site(program, rng.choice(sites))


def cleanup(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    dead = analysis.dead_stores(program)
    unreachable = analysis.unreachable_count(program) > 0
    if not dead and not unreachable:
        return None
    if dead and (not unreachable or rng.random() < 0.5):
        return _set(program, rng.choice(dead), Instr(Opcode.POP))
    return analysis.remove_unreachable(program)


def branch(program: Program, vocab: Vocabulary, rng: random.Random) -> Program | None:
    sites = [i for i, ins in enumerate(program.instrs) if ins.op in (Opcode.JMP, Opcode.JZ,
                                                                     Opcode.JNZ)]
    if not sites:
        return None
    i = rng.choice(sites)
    ins = program.instrs[i]
    roll = rng.random()
    if ins.op is not Opcode.JMP and roll < 0.3:
        flipped = Opcode.JNZ if ins.op is Opcode.JZ else Opcode.JZ
        return _set(program, i, Instr(flipped, ins.args))
    if roll < 0.6:  # drop the branch; a conditional one leaves its test to pop
        return program.delete(i) if ins.op is Opcode.JMP else _set(program, i, Instr(Opcode.POP))
    return _set(program, i, Instr(ins.op, (rng.randrange(len(program)),)))


MOVES: dict[str, tuple[Move, float]] = {
    "opcode": (opcode, 3.0),
    "operand": (operand, 3.0),
    "swap": (swap, 1.5),
    "move": (move, 1.5),
    "insert": (insert, 1.5),
    "delete": (delete, 3.0),
    "replace": (replace, 2.0),
    "peephole": (peephole, 1.0),
    "cleanup": (cleanup, 1.0),
    "rewrite": (rewrite, 1.0),
    "branch": (branch, 1.0),
}
MULTI_WEIGHT = 2.0


class MoveSet:
    """Draws moves by weight; `multi` chains two or three single moves."""

    def __init__(self, vocab: Vocabulary, weights: dict[str, float] | None = None,
                 max_bytes: int = MAX_CODE_BYTES) -> None:
        self.vocab = vocab
        table = {name: w for name, (_, w) in MOVES.items()}
        table["multi"] = MULTI_WEIGHT
        table.update(weights or {})
        self.names = [n for n, w in table.items() if w > 0]
        self.weights = [table[n] for n in self.names]
        self.singles = [n for n in self.names if n != "multi"]
        self.single_weights = [table[n] for n in self.singles]
        self.max_bytes = max_bytes

    def propose(self, program: Program, rng: random.Random,
                tries: int = 8) -> tuple[Program, str] | None:
        """A changed program and the move's name; moves that do not apply (no jump to
        retarget, no rewrite site) are drawn again, up to `tries` times."""
        for _ in range(tries):
            proposal = self._propose(program, rng)
            if proposal is not None and proposal[0] != program:
                return proposal
        return None

    def _propose(self, program: Program, rng: random.Random) -> tuple[Program, str] | None:
        name = rng.choices(self.names, weights=self.weights)[0]
        if name == "multi":
            count = rng.choice((2, 2, 3))
            current: Program | None = program
            for _ in range(count):
                step = self._single(current, rng) if current is not None else None
                if step is not None:
                    current = step[0]
            result = current if current is not program else None
        else:
            result = MOVES[name][0](program, self.vocab, rng)
        if result is None or not len(result) or result.size > self.max_bytes:
            return None
        return result, name

    def _single(self, program: Program, rng: random.Random) -> tuple[Program, str] | None:
        name = rng.choices(self.singles, weights=self.single_weights)[0]
        result = MOVES[name][0](program, self.vocab, rng)
        return None if result is None else (result, name)
