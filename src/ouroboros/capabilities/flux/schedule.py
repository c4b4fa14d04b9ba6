"""Proposals of several coordinated edits for the finishing descent (docs/flux.md,
"Search", round 6): value reuse (`reuses`), reordering of two producers (`reorders`),
loop rotation (`rotations`) and hoisting of loop-invariant producers (`hoists`).

Value reuse on straight-line code: a value computed twice is computed once and kept
on the stack by a `DUP`.

A *producer* is a run of side-effect-free instructions that reads nothing below the
stack it starts on and leaves exactly one value (`SENSE 0`, `LOAD 3`, `SENSE 0; SENSE
1; ADD`). When the same producer runs again later in the same straight-line stretch,
and nothing between writes a slot it reads, the second run computes the same value: the
first is followed by a `DUP`, the second is deleted. The copy waits under the code
between, which must not reach below it; where that code leaves one value above the
copy, the next instruction must be commutative (or a `SWAP` is added). This covers a
reload that a `DUP` makes unnecessary, a re-sensed input, and a common subexpression
computed twice, each of which no single edit of the chains can reach (the `DUP` and the
deletion are two edits, the first of which alone is wrong).

Every rewrite is a *proposal*: the finishing descent scores it as one evaluation and
checks it for equivalence with the original program like any other candidate, so an
error here can cost evaluations but never make a wrong program a best.
"""

from __future__ import annotations

from ouroboros.capabilities.flux.isa import MEMORY_SLOTS, OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets
from ouroboros.capabilities.flux.rewrites import self_contained

MAX_PRODUCER = 5  # instructions in one producer
MAX_GAP = 24  # instructions from the first producer's end to the second's start
MAX_PROPOSALS = 24  # rewrites proposed for one program

_SOURCES = frozenset({Opcode.SENSE, Opcode.LOAD, Opcode.PUSH, Opcode.PARAM})
# No DIV or MOD (they trap) and no stack shuffles that could reach below the producer.
_PURE = _SOURCES | frozenset({
    Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.NEG, Opcode.INC, Opcode.DEC, Opcode.AND,
    Opcode.OR, Opcode.XOR, Opcode.NOT, Opcode.SHL, Opcode.SHR, Opcode.EQ, Opcode.LT,
    Opcode.GT, Opcode.DUP})
_COMMUTATIVE = frozenset({Opcode.ADD, Opcode.MUL, Opcode.AND, Opcode.OR, Opcode.XOR,
                          Opcode.EQ})
# Control leaves the straight line, or a slot changes under a LOAD.
_BARRIERS = frozenset({Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL, Opcode.RET,
                       Opcode.HALT, Opcode.DECAY})


def _producer(code: tuple[Instr, ...], start: int, length: int) -> bool:
    return self_contained(code[start:start + length], _PURE)


def reuses(program: Program) -> list[Program]:
    """Programs where a producer computed twice is computed once and `DUP`ed, in a fixed
    order (earliest first producer, longest first), at most `MAX_PROPOSALS`."""
    code = program.instrs
    n = len(code)
    targets = jump_targets(program)
    out: list[Program] = []
    for i in range(n):
        for length in range(min(MAX_PRODUCER, n - i), 0, -1):
            if not _producer(code, i, length):
                continue
            if any(t in targets for t in range(i + 1, i + length + 1)):
                continue  # another path could enter the producer or skip the DUP
            seg = code[i:i + length]
            slots = {ins.args[0] for ins in seg if ins.op is Opcode.LOAD}
            depth = 1  # relative to the stack the producer started on; the copy is at 0
            for j in range(i + length, min(n - length, i + length + MAX_GAP) + 1):
                if j in targets:  # another path could reach the second producer
                    break
                if code[j:j + length] == seg and depth <= 1 and not any(
                        t in targets for t in range(j + 1, j + length)):
                    fix: tuple[Instr, ...] = ()
                    if depth == 1:  # one value above the copy: [.., v, x] for [.., x, v]
                        after = code[j + length] if j + length < n else None
                        if after is None or after.op not in _COMMUTATIVE:
                            fix = (Instr(Opcode.SWAP),)
                    new = (*seg, Instr(Opcode.DUP), *code[i + length:j], *fix)
                    out.append(program.replace(i, j + length - i, new))
                    if len(out) >= MAX_PROPOSALS:
                        return out
                ins = code[j]
                if ins.op in _BARRIERS or (ins.op is Opcode.STORE and ins.args[0] in slots):
                    break
                info = OPS[ins.op]
                if depth < info.pops:  # the code between would reach the copy
                    break
                depth += info.pushes - info.pops
    return out


MAX_TEST = 4  # instructions in a loop's test


def rotations(program: Program) -> list[Program]:
    """Loops tested at the top (`l: T; JZ d; BODY; JMP l; d:`) tested at the bottom as
    well: the back `JMP l` becomes a copy of `T` and the inverse branch to the body, so
    each turn runs one jump fewer. Only where the loop's exit is the instruction after the
    back jump, and nothing jumps into `T`; the copy runs exactly the instructions the
    jump would have led to, so the rotation is jump threading, whatever `T` does."""
    code = program.instrs
    targets = jump_targets(program)
    out: list[Program] = []
    for e, ins in enumerate(code):
        if ins.op is not Opcode.JMP or ins.args[0] >= e:
            continue
        top = ins.args[0]
        for length in range(1, MAX_TEST + 1):
            at = top + length
            if at >= e or code[at - 1].op in _BARRIERS or any(
                    t in targets for t in range(top + 1, at + 1)):
                break
            branch = code[at]
            if branch.op in (Opcode.JZ, Opcode.JNZ) and branch.args[0] == e + 1:
                inverse = Opcode.JNZ if branch.op is Opcode.JZ else Opcode.JZ
                out.append(program.replace(e, 1, (*code[top:at], Instr(inverse, (at + 1,)))))
                break
    return out


MAX_HOISTS = 12  # hoisting proposals for one program


def _free_slot(program: Program) -> int | None:
    used = {ins.args[0] for ins in program.instrs
            if ins.op in (Opcode.LOAD, Opcode.STORE, Opcode.DECAY)}
    return next((s for s in range(MEMORY_SLOTS) if s not in used), None)


def hoists(program: Program) -> list[Program]:
    """Loop-invariant producers computed once before the loop into a slot nobody uses:
    in a loop `[l, e]` (a backward jump at `e` to `l`, entered only at `l` from outside:
    every jump into it comes from inside it), a producer of 2-5 instructions costing more
    than a `LOAD`, whose `LOAD`s read slots the loop does not write, becomes `LOAD s`,
    and `producer; STORE s` runs before `l`. It is pure and cannot trap, so running it
    once more than the loop would costs cycles only."""
    code = program.instrs
    slot = _free_slot(program)
    if slot is None:
        return []
    targets = jump_targets(program)
    out: list[Program] = []
    for e, back in enumerate(code):
        if not back.is_jump or back.op is Opcode.CALL or back.args[0] > e:
            continue
        top = back.args[0]
        if any(ins.is_jump and top <= ins.args[0] <= e and not top <= k <= e
               for k, ins in enumerate(code)):
            continue  # entered from elsewhere than the fall-through into `top`
        written = {ins.args[0] for ins in code[top:e + 1]
                   if ins.op in (Opcode.STORE, Opcode.DECAY)}
        if any(ins.op in (Opcode.CALL, Opcode.RET) for ins in code[top:e + 1]):
            continue
        for i in range(top, e):
            for length in range(min(MAX_PRODUCER, e - i), 1, -1):
                seg = code[i:i + length]
                if not _producer(code, i, length) or any(
                        t in targets for t in range(i + 1, i + length)) or any(
                        ins.op is Opcode.LOAD and ins.args[0] in written for ins in seg):
                    continue
                if sum(OPS[ins.op].cycles for ins in seg) <= OPS[Opcode.LOAD].cycles:
                    continue
                body = program.replace(i, length, (Instr(Opcode.LOAD, (slot,)),))
                out.append(body.insert(top, (*seg, Instr(Opcode.STORE, (slot,)))))
                if len(out) >= MAX_HOISTS:
                    return out
                break  # the longest producer at `i` only
    return out


def reorders(program: Program) -> list[Program]:
    """`P1; P2; SWAP` with two adjacent producers becomes `P2; P1`: they are pure, so
    either order computes the same two values (the rewrite table does this for
    one-instruction producers only)."""
    code = program.instrs
    targets = jump_targets(program)
    out: list[Program] = []
    for s in range(1, len(code)):
        if code[s].op is not Opcode.SWAP or s in targets:
            continue
        done = False
        for len2 in range(1, min(MAX_PRODUCER, s) + 1):
            mid = s - len2
            if not _producer(code, mid, len2) or any(t in targets for t in range(mid + 1, s)):
                continue
            for len1 in range(1, min(MAX_PRODUCER, mid) + 1):
                first = mid - len1
                if (len1 == len2 == 1) or not _producer(code, first, len1) or any(
                        t in targets for t in range(first + 1, mid + 1)):
                    continue
                new = (*code[mid:s], *code[first:mid])
                out.append(program.replace(first, s + 1 - first, new))
                done = True
                break
            if done or len(out) >= MAX_PROPOSALS:
                break
        if len(out) >= MAX_PROPOSALS:
            break
    return out
