"""Sound local rewrites (peephole rules): OptimizeOpcode's table and the peephole baseline.

Each rule replaces a window of instructions with a cheaper sequence that computes the
same thing for every input. A rule only fires when no jump lands strictly inside the
window, since code entered in the middle would no longer mean the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ouroboros.capabilities.flux.isa import OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets

Rule = Callable[[tuple[Instr, ...], int], tuple[Instr, ...] | None]


def _is_push(ins: Instr, value: int | None = None) -> bool:
    return ins.op is Opcode.PUSH and (value is None or ins.args[0] == value)


_IDENTITY_OPERANDS = {  # PUSH k; OP  ==  nothing
    Opcode.ADD: 0, Opcode.SUB: 0, Opcode.OR: 0, Opcode.XOR: 0, Opcode.SHL: 0, Opcode.SHR: 0, Opcode.MUL: 1, Opcode.DIV: 1, Opcode.AND: -1,
}
_CANCELLING = {(Opcode.SWAP, Opcode.SWAP), (Opcode.NEG, Opcode.NEG), (Opcode.NOT, Opcode.NOT), (Opcode.INC, Opcode.DEC),
               (Opcode.DEC, Opcode.INC), (Opcode.DUP, Opcode.POP)}
_FOLD = {Opcode.ADD: lambda a, b: a + b, Opcode.SUB: lambda a, b: a - b, Opcode.MUL: lambda a, b: a * b}


def _pair_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b = w[0], w[1]
    if (a.op, b.op) in _CANCELLING:
        return ()
    if a.op is Opcode.PUSH:
        k = a.args[0]
        if b.op is Opcode.POP:
            return ()
        if _IDENTITY_OPERANDS.get(b.op) == k:
            return ()
        if k == 1 and b.op is Opcode.ADD:
            return (Instr(Opcode.INC),)
        if k == 1 and b.op is Opcode.SUB:
            return (Instr(Opcode.DEC),)
        if k == -1 and b.op is Opcode.MUL:
            return (Instr(Opcode.NEG),)
        if b.op is Opcode.MUL and k > 1 and k & (k - 1) == 0:
            return (Instr(Opcode.PUSH, (k.bit_length() - 1,)), Instr(Opcode.SHL))
    if a.op is Opcode.SENSE and b.op is Opcode.ACT and a.args == b.args:
        return (Instr(Opcode.INSTINCT, a.args),)  # the fused reflex: same value, same channel
    if a.op is Opcode.STORE and b.op is Opcode.LOAD and a.args == b.args:
        return (Instr(Opcode.DUP), Instr(Opcode.STORE, a.args))
    if a.op is Opcode.JMP and a.args[0] == index + 1:
        return (b,)
    return None


def _single_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    ins = w[0]
    if ins.op is Opcode.NOP:
        return ()
    if ins.op is Opcode.JMP and ins.args[0] == index + 1:
        return ()
    return None


def _fold_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b, op = w
    if _is_push(a) and _is_push(b) and op.op in _FOLD:
        value = _FOLD[op.op](a.args[0], b.args[0])
        if -(1 << 31) <= value < (1 << 31):
            return (Instr(Opcode.PUSH, (value,)),)
    return None


RULES: tuple[tuple[int, Rule], ...] = ((1, _single_rule), (2, _pair_rule), (3, _fold_rule))


@dataclass(frozen=True)
class Site:
    index: int
    width: int
    replacement: tuple[Instr, ...]


def cost(instrs: tuple[Instr, ...]) -> int:
    return sum(OPS[i.op].cycles for i in instrs)


def sites(program: Program) -> Iterator[Site]:
    """Every place a rule applies, in program order."""
    targets = jump_targets(program)
    instrs = program.instrs
    for index in range(len(instrs)):
        for width, rule in RULES:
            window = instrs[index:index + width]
            if len(window) < width or any(index < t < index + width for t in targets):
                continue
            new = rule(window, index)
            if new is not None and cost(new) < cost(window):
                yield Site(index, width, new)


def apply_site(program: Program, site: Site) -> Program:
    return program.replace(site.index, site.width, site.replacement)


def peephole(program: Program, *, limit: int = 1000) -> tuple[Program, int]:
    """Apply rules to a fixed point; returns the program and the rewrites made."""
    steps = 0
    while steps < limit:
        site = next(sites(program), None)
        if site is None:
            break
        program = apply_site(program, site)
        steps += 1
    return program, steps
