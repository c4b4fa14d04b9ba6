"""Lift and lower: a region's effect as simplified expressions, emitted again as
straight-line FLUX.

A *region* is a run of instructions `[start, end)` that control enters only at `start`:
the whole program, a basic block, or a counted loop with the code around it. The region
is executed *symbolically* from a generic entry state (each stack entry, memory slot and
input a variable) until control reaches `end` or an exit. Values are polynomials over
those variables with 64-bit wrapping coefficients (sums of multiples collapse into one
multiply, `SHL` by a constant is a multiply by 2^k, `NOT x` is `-x - 1`, constants
fold); `AND`, `OR`, `XOR`, `SHR`, comparisons and division by a non-zero constant are
opaque nodes over polynomials, simplified where an operand is an identity or both are
equal. A conditional branch whose condition is a constant is followed, so a loop whose
trip count is fixed unrolls; anything else bails out (`Bail`): a branch on a value that
is not constant (a trip count that depends on an input), more than `MAX_VISITS` visits
of one instruction (the unroll bound), more than `MAX_STEPS` steps, a division by a value
that is not a non-zero constant, a pop below the entry stack that the region does not
own, `CALL`, `RET`, `DECAY`, `THRESH`, or a polynomial beyond `MAX_TERMS` terms or degree
`MAX_DEGREE`.

The effect (values emitted with their channels, the stack left, the slots written and
later read) is then *lowered* to stack code by a small cost-driven generator (a product
of atoms, a multiple by a power of two as a shift, a common factor or a common
coefficient taken out when that is cheaper) and proposed only when it costs fewer
cycles than the region ran. A lowering is a *proposal*: the search scores it as one
evaluation and checks it for equivalence with the original program (proof, or testing
on generated inputs) like any other candidate, so an error in this module can cost
evaluations but never make a wrong program a best.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import gcd
from typing import Any

from ouroboros.capabilities.flux import analysis, stackgen
from ouroboros.capabilities.flux.isa import INT64_MAX, INT64_MIN, OPS, Opcode, wrap64
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets
from ouroboros.capabilities.flux.rewrites import peephole
from ouroboros.capabilities.flux.vm import trunc_div, trunc_rem

MAX_VISITS = 64  # visits of one instruction: a loop unrolls at most 64 times
MAX_STEPS = 4096
MAX_TERMS = 24
MAX_DEGREE = 4
MAX_NODES = 256  # nodes of one expression written out as a tree (`_opaque`)
MAX_PATHS = 16  # paths one region may fork into for `split` (round 8)
_I32 = (-(1 << 31), (1 << 31) - 1)
_M = (1 << 64) - 1


class Bail(Exception):
    """The region is out of the lifter's reach (the message says why)."""


class Fork(Bail):
    """A branch on a value that is not constant, with no decision given for it."""


# A polynomial: ((monomial, coefficient), ...) sorted; a monomial is a sorted tuple of
# atoms; an atom is ("in", k), ("mem", k), ("stk", k) or an opaque node
# ("op", opcode name, poly, poly). Coefficients are signed 64-bit (wrapped).
Atom = tuple[Any, ...]
Mono = tuple[Atom, ...]
Poly = tuple[tuple[Mono, int], ...]


def _key(x: Any) -> str:
    return repr(x)


def _norm(terms: dict[Mono, int]) -> Poly:
    out = [(m, wrap64(c)) for m, c in terms.items() if wrap64(c) != 0]
    if len(out) > MAX_TERMS:
        raise Bail(f"more than {MAX_TERMS} terms")
    return tuple(sorted(out, key=lambda t: _key(t[0])))


def const(value: int) -> Poly:
    return _norm({(): value})


def atom(a: Atom) -> Poly:
    return (((a,), 1),)


def constant_of(p: Poly) -> int | None:
    if not p:
        return 0
    if len(p) == 1 and p[0][0] == ():
        return p[0][1]
    return None


def add(p: Poly, q: Poly, sign: int = 1) -> Poly:
    terms = dict(p)
    for m, c in q:
        terms[m] = terms.get(m, 0) + sign * c
    return _norm(terms)


def scale(p: Poly, k: int) -> Poly:
    return _norm({m: c * k for m, c in p})


def mul(p: Poly, q: Poly) -> Poly:
    terms: dict[Mono, int] = {}
    for m1, c1 in p:
        for m2, c2 in q:
            m = tuple(sorted((*m1, *m2), key=_key))
            if len(m) > MAX_DEGREE:
                raise Bail(f"a product of degree above {MAX_DEGREE}")
            terms[m] = terms.get(m, 0) + c1 * c2
    return _norm(terms)


def _size(p: Poly, limit: int) -> int:
    """The nodes of ``p`` written out as a tree (what `_key` and the lowering spend), counted
    up to ``limit``: a node shared by a DUP counts each time it is used."""
    total = 0
    for mono, _ in p:
        for a in mono:
            total += 1
            if a[0] == "op":
                total += _size(a[2], limit - total)
                if total <= limit:
                    total += _size(a[3], limit - total)
            if total > limit:
                return total
    return total


def _opaque(name: str, a: Poly, b: Poly) -> Poly:
    # A loop that DUPs a value it cannot fold (an AND, a XOR …) doubles the tree each turn:
    # written out it grew past memory (a search worker reached 24 GB); a tree this large
    # lowers to more code than any program may hold anyway.
    if _size(a, MAX_NODES) + _size(b, MAX_NODES) >= MAX_NODES:
        raise Bail(f"an expression of more than {MAX_NODES} nodes")
    return atom(("op", name, a, b))


_FOLD = {
    "AND": lambda a, b: a & b, "OR": lambda a, b: a | b, "XOR": lambda a, b: a ^ b,
    "SHR": lambda a, b: a >> (b & 63), "EQ": lambda a, b: int(a == b),
    "LT": lambda a, b: int(a < b), "GT": lambda a, b: int(a > b),
    "DIV": trunc_div, "MOD": trunc_rem,
}


def binary(name: str, a: Poly, b: Poly) -> Poly:
    """An operation outside the polynomial ring, simplified or left opaque."""
    ca, cb = constant_of(a), constant_of(b)
    if name in ("DIV", "MOD"):
        if cb is None or cb == 0:
            raise Bail("a division by a value that is not a non-zero constant")
        if ca is not None:
            return const(_FOLD[name](ca, cb))
        if cb == 1:
            return a if name == "DIV" else const(0)
        if cb == -1 and name == "MOD":
            return const(0)
        return _opaque(name, a, b)
    if ca is not None and cb is not None:
        return const(_FOLD[name](ca, cb))
    if name == "SHR" and cb is not None and cb & 63 == 0:
        return a
    if name in ("AND", "OR", "XOR"):
        if ca is not None:  # constants on the right
            a, b, ca, cb = b, a, cb, ca
        if (name == "AND" and cb == -1) or (name in ("OR", "XOR") and cb == 0):
            return a
        if name == "AND" and cb == 0:
            return const(0)
        if name == "OR" and cb == -1:
            return const(-1)
        if name == "XOR" and cb == -1:
            return add(scale(a, -1), const(-1))  # NOT a
        if a == b:
            return const(0) if name == "XOR" else a
        if _key(a) > _key(b):
            a, b = b, a
    if name in ("EQ", "LT", "GT"):
        diff = constant_of(add(a, b, -1))
        if diff is not None:  # a - b is a constant: a == b exactly when it is 0
            if name == "EQ":
                return const(int(diff == 0))
            if diff == 0:
                return const(0)
        if name == "EQ" and _key(a) > _key(b):
            a, b = b, a
    return _opaque(name, a, b)


# ------------------------------------------------------------------ symbolic execution
@dataclass(frozen=True)
class Effect:
    """What a region does from its generic entry state."""

    emitted: tuple[tuple[Poly, int], ...]
    stack: tuple[Poly, ...]
    memory: tuple[Poly, ...]
    halts: bool  # the region ends the program (HALT, or RET with no caller)
    cycles: int  # what the region ran, in cycles
    # Each non-constant branch followed by a decision: (its value, whether this path is
    # the one where the value is not zero).
    forks: tuple[tuple[Poly, bool], ...] = ()


_POLY_OPS = {Opcode.ADD, Opcode.SUB, Opcode.MUL}
_OPAQUE = {Opcode.AND: "AND", Opcode.OR: "OR", Opcode.XOR: "XOR", Opcode.SHR: "SHR",
           Opcode.EQ: "EQ", Opcode.LT: "LT", Opcode.GT: "GT", Opcode.DIV: "DIV",
           Opcode.MOD: "MOD"}


def execute(program: Program, start: int, end: int, depth: int, *,
            zeroed: bool = False, decide: tuple[bool, ...] = ()) -> Effect:
    """Run `[start, end)` symbolically from a stack of `depth` unknown entries (and
    memory of unknown slots, or of zeros when `zeroed`: the program's own entry).
    The k-th branch on a value that is not constant is taken when `decide[k]` is True;
    past the decisions given, such a branch raises `Fork`."""
    forks: list[tuple[Poly, bool]] = []
    instrs = program.instrs
    stack: list[Poly] = [atom(("stk", i)) for i in range(depth)]
    memory: list[Poly] = [const(0) if zeroed else atom(("mem", i)) for i in range(16)]
    emitted: list[tuple[Poly, int]] = []
    visits: dict[int, int] = {}
    pc, steps, cycles = start, 0, 0

    def pop() -> Poly:
        if not stack:
            raise Bail("a pop below the region's entry stack")
        return stack.pop()

    while True:
        if pc == end:
            return Effect(tuple(emitted), tuple(stack), tuple(memory), False, cycles,
                          tuple(forks))
        if not start <= pc < end:
            raise Bail("control leaves the region elsewhere than at its end")
        steps += 1
        visits[pc] = visits.get(pc, 0) + 1
        if visits[pc] > MAX_VISITS:
            raise Bail(f"a loop runs more than {MAX_VISITS} times")
        if steps > MAX_STEPS:
            raise Bail(f"more than {MAX_STEPS} steps")
        ins = instrs[pc]
        op = ins.op
        cycles += OPS[op].cycles
        pc += 1
        if op is Opcode.PUSH:
            stack.append(const(ins.args[0]))
        elif op is Opcode.POP:
            pop()
        elif op is Opcode.DUP:
            a = pop()
            stack += [a, a]
        elif op is Opcode.SWAP:
            b, a = pop(), pop()
            stack += [b, a]
        elif op is Opcode.OVER:
            b, a = pop(), pop()
            stack += [a, b, a]
        elif op in _POLY_OPS:
            b, a = pop(), pop()
            stack.append(add(a, b) if op is Opcode.ADD else add(a, b, -1)
                         if op is Opcode.SUB else mul(a, b))
        elif op is Opcode.SHL:
            b, a = pop(), pop()
            k = constant_of(b)
            stack.append(scale(a, 1 << (k & 63)) if k is not None else _opaque("SHL", a, b))
        elif op in _OPAQUE:
            b, a = pop(), pop()
            stack.append(binary(_OPAQUE[op], a, b))
        elif op is Opcode.NEG:
            stack.append(scale(pop(), -1))
        elif op is Opcode.INC:
            stack.append(add(pop(), const(1)))
        elif op is Opcode.DEC:
            stack.append(add(pop(), const(-1)))
        elif op is Opcode.NOT:
            stack.append(add(scale(pop(), -1), const(-1)))
        elif op is Opcode.SENSE:
            stack.append(atom(("in", ins.args[0])))
        elif op is Opcode.LOAD:
            stack.append(memory[ins.args[0]])
        elif op is Opcode.STORE:
            memory[ins.args[0]] = pop()
        elif op is Opcode.ACT:
            emitted.append((pop(), ins.args[0]))
        elif op is Opcode.INSTINCT:
            emitted.append((atom(("in", ins.args[0])), ins.args[0]))
        elif op is Opcode.PARAM:
            stack.append(const(program.params[ins.args[0]]))
        elif op is Opcode.NOP:
            pass
        elif op is Opcode.JMP:
            pc = ins.args[0]
        elif op in (Opcode.JZ, Opcode.JNZ):
            cond = pop()
            value = constant_of(cond)
            if value is None:
                if len(forks) >= len(decide):
                    raise Fork("a branch on a value that is not constant")
                taken = decide[len(forks)]
                forks.append((cond, taken == (op is Opcode.JNZ)))
                if taken:
                    pc = ins.args[0]
            elif (value == 0) == (op is Opcode.JZ):
                pc = ins.args[0]
        elif op is Opcode.HALT:
            return Effect(tuple(emitted), tuple(stack), tuple(memory), True, cycles,
                          tuple(forks))
        else:
            raise Bail(f"{op.name} is not lifted")


_BOOLEAN = ("EQ", "LT", "GT")


def ite(k: Poly, a: Poly, b: Poly) -> Poly:
    """`a` where the 0/1 value `k` is 1, else `b`, without a branch: plain arithmetic
    when both are constants, a mask when one is zero; Bail otherwise."""
    if a == b:
        return a
    ca, cb = constant_of(a), constant_of(b)
    if ca is not None and cb is not None:
        return add(const(cb), scale(k, ca - cb))
    if cb == 0:
        return binary("AND", a, scale(k, -1))  # a & -k
    if ca == 0:
        return binary("AND", b, add(k, const(-1)))  # b & (k - 1)
    # The general select, b ^ ((a ^ b) & -k), costs six more instructions than either
    # arm: it rarely beats the branch and leads the search into a branchless basin
    # (measured on tuning3's max).
    raise Bail("an if/else whose arms differ by more than a constant or a zero")


def merged(program: Program, start: int, end: int, depth: int, *,
           zeroed: bool = False) -> Effect:
    """The effect of a region with one if/else (one branch on a value that is not
    constant, both paths reaching the same end), each value that differs between the
    paths an `ite` of the branch's condition; Bail when the paths do not line up."""
    taken = execute(program, start, end, depth, zeroed=zeroed, decide=(True,))
    fallen = execute(program, start, end, depth, zeroed=zeroed, decide=(False,))
    if not (taken.forks and fallen.forks) or taken.halts != fallen.halts:
        raise Bail("the paths of the if/else do not end alike")
    if [c for _, c in taken.emitted] != [c for _, c in fallen.emitted] \
            or len(taken.stack) != len(fallen.stack):
        raise Bail("the paths of the if/else emit or leave different things")
    cond, nonzero = taken.forks[0]
    a, b = (taken, fallen) if nonzero else (fallen, taken)  # a: where cond is not zero
    head = cond[0][0][0] if len(cond) == 1 and len(cond[0][0]) == 1 else None
    if cond[0][1:] == (1,) and head is not None and head[0] == "op" and head[1] in _BOOLEAN:
        k = cond
    else:  # k = (cond == 0) picks the other arm
        k, a, b = binary("EQ", cond, const(0)), b, a
    return Effect(
        tuple((ite(k, x, y), ch) for (x, ch), (y, _) in zip(a.emitted, b.emitted, strict=True)),
        tuple(ite(k, x, y) for x, y in zip(a.stack, b.stack, strict=True)),
        tuple(ite(k, x, y) for x, y in zip(a.memory, b.memory, strict=True)),
        a.halts, max(a.cycles, b.cycles))


# ------------------------------------------------------- algebra (round 7, `algebra`)
def simplified(effect: Effect, logic: bool = False,
               poly: Callable[[Poly], Poly] | None = None) -> Effect:
    """`effect` with identities of 64-bit integer arithmetic applied to its opaque
    nodes, bottom up (`_rule`). Each is exact on every input; the lowering that comes
    of it is checked against the original like every candidate anyway. `poly`: a
    simplifier already built for `logic`, whose memo the caller shares across effects."""
    poly = poly or _simplifier(logic)
    return Effect(tuple((poly(v), ch) for v, ch in effect.emitted),
                  tuple(poly(v) for v in effect.stack),
                  tuple(poly(v) for v in effect.memory), effect.halts, effect.cycles,
                  effect.forks)


def decided(program: Program, start: int, end: int, depth: int, *,
            zeroed: bool = False) -> Effect | None:
    """The effect of a region with one branch whose condition the identities below
    make a constant (`(x & 15) == 16` is never true): the path it takes; else None."""
    paths = [execute(program, start, end, depth, zeroed=zeroed, decide=(d,))
             for d in (True, False)]
    if not all(p.forks for p in paths):
        return None
    value = constant_of(_simplifier()(paths[0].forks[0][0]))
    if value is None:
        return None
    return next(p for p in paths if p.forks[0][1] == (value != 0))


def _simplifier(logic: bool = False) -> Callable[[Poly], Poly]:
    return _rebuilder(lambda a, x, y: _rule(a[1], x, y, logic), _shift_mask)


def _rebuilder(on_op: Callable[[Atom, Poly, Poly], Poly],
               on_term: Callable[[Poly], Poly] = lambda term: term) -> Callable[[Poly], Poly]:
    """A memoised bottom-up map of polynomials: each operation atom becomes
    `on_op(atom, its two operands mapped)`, other atoms stay, each term passes through
    `on_term` (the simplifier's rules and the rewrite of remainders share it)."""
    memo: dict[Poly, Poly] = {}

    def poly(p: Poly) -> Poly:
        hit = memo.get(p)
        if hit is not None:
            return hit
        out = const(0)
        for mono, c in p:
            term = const(c)
            for a in mono:
                term = mul(term, on_op(a, poly(a[2]), poly(a[3])) if a[0] == "op"
                           else atom(a))
            out = add(out, on_term(term))
        memo[p] = out
        return out

    return poly


def _node(p: Poly) -> Atom | None:
    """The opaque node `p` is, if it is one alone."""
    if len(p) == 1 and p[0][1] == 1 and len(p[0][0]) == 1 and p[0][0][0][0] == "op":
        return p[0][0][0]
    return None


def _bound(p: Poly) -> int | None:
    """An upper bound of `p` if it is never negative (a sum of non-negative multiples
    of `x & m` with m >= 0 and of comparisons, plus a constant >= 0, that cannot
    wrap), else None."""
    total = 0
    for mono, c in p:
        if not mono:
            if c < 0:
                return None
            total += c
            continue
        a = mono[0]
        if len(mono) != 1 or c < 0 or a[0] != "op":
            return None
        if a[1] in ("EQ", "LT", "GT"):
            total += c
        elif a[1] == "AND" and (constant_of(a[3]) or -1) >= 0:
            total += c * (constant_of(a[3]) or 0)
        else:
            return None
    return total if total < 1 << 62 else None


def _non_negative(p: Poly) -> bool:
    return _bound(p) is not None


def _shift_mask(term: Poly) -> Poly:
    """`c·((x >> a) & m)` with c = ±2^b as `±(x·2^(b−a) & (m << b))` (b >= a) or
    `±((x >> (a − b)) & (m << b))`: the bits a shift brings in are the ones the
    shifted mask drops, so one shift and one mask do what two shifts and a mask did."""
    node = _node(((term[0][0], 1),)) if len(term) == 1 and len(term[0][0]) == 1 else None
    c = term[0][1] if node is not None else 0
    b = _power(abs(c))
    if node is None or b is None or b == 0 or node[1] != "AND":
        return term
    m, inner = constant_of(node[3]), _node(node[2])
    a = constant_of(inner[3]) if inner is not None and inner[1] == "SHR" else None
    if m is None or inner is None or a is None or not 0 < a < 64:
        return term
    mask = wrap64(m << b)
    if not _I32[0] <= mask <= _I32[1]:
        return term
    x = inner[2]
    shifted = scale(x, 1 << (b - a)) if b >= a else binary("SHR", x, const(a - b))
    return scale(binary("AND", shifted, const(mask)), 1 if c > 0 else -1)


def _low_mask(k: int | None) -> int | None:
    """j when k = 2^j - 1 (j >= 1), else None."""
    return None if k is None or k <= 0 else _power(k + 1)


def _strip_masks(p: Poly, bits: int) -> Poly:
    """`p` with each `y & (2^j - 1)`, j >= bits, that it adds or multiplies replaced by
    `y`: sums and products modulo 2^bits depend only on their operands' low bits."""
    out = const(0)
    for mono, c in p:
        term = const(c)
        for a in mono:
            j = _low_mask(constant_of(a[3])) if a[0] == "op" and a[1] == "AND" else None
            term = mul(term, _strip_masks(a[2], bits) if j is not None and j >= bits
                       else atom(a))
        out = add(out, term)
    return out


def _rule(name: str, a: Poly, b: Poly, logic: bool = False) -> Poly:
    if logic:
        got = _logic(name, a, b)
        if got is not None:
            return got
    cb = constant_of(b)
    if name in ("DIV", "MOD") and cb is not None and cb > 0 and _non_negative(a) \
            and all(c % cb == 0 for _, c in a):
        # a non-negative sum that cannot wrap, each term a multiple of cb: the quotient
        # is exact, term by term (6(x & 15) / 2 is 3(x & 15)); the remainder is 0
        return _norm({m: c // cb for m, c in a}) if name == "DIV" else const(0)
    k = _power(cb or 0)
    if name in ("DIV", "MOD") and k is not None and _non_negative(a):
        # a non-negative dividend: / 2^k is >> k and % 2^k is & (2^k - 1)
        name, b = ("SHR", const(k)) if name == "DIV" else ("AND", const(cb - 1))  # type: ignore[operator]
        cb = constant_of(b)
    if name == "AND" and constant_of(a) is not None and cb is None:
        a, b, cb = b, a, constant_of(a)
    if name == "AND" and cb is not None:
        j = _low_mask(cb)
        if j is not None:  # (x & 255) + y, masked by 255: x + y, masked
            a = _strip_masks(a, j)
        inner = _node(a)
        if inner is not None and inner[1] == "AND":
            ci = constant_of(inner[3])
            if ci is not None:  # (x & m1) & m2 = x & (m1 & m2)
                return binary("AND", inner[2], const(ci & cb))
        if inner is not None and inner[1] == "SHR" and cb >= 0:
            k, masked = constant_of(inner[3]), _node(inner[2])
            if k is not None and 0 <= k < 64 and masked is not None and masked[1] == "AND":
                m1 = constant_of(masked[3])
                if m1 is not None and (cb << k) & ~m1 == 0:
                    # ((x & m1) >> k) & m2 = (x >> k) & m2 when m1 keeps every bit m2 does
                    a = binary("SHR", masked[2], inner[3])
    if name == "SHR" and cb is not None and 0 < cb < 64:
        # (2^k x + c) >> k with 0 <= c < 2^k: c sets only bits the shift drops
        c0 = dict(a).get((), 0)
        if c0 and 0 <= c0 < 1 << cb and all(c % (1 << cb) == 0 for m, c in a if m):
            a = add(a, const(c0), -1)
    if name == "OR":  # (x & m) | (y & ~m) = ((x ^ y) & m) ^ y
        nodes = [p[0][0][0] if len(p) == 1 and p[0][1] == 1 and len(p[0][0]) == 1 else None
                 for p in (a, b)]
        if all(x is not None and x[0] == "op" and x[1] == "AND" for x in nodes):
            (_, _, x1, x2), (_, _, y1, y2) = nodes  # type: ignore[misc]
            pairs = [(x1, x2), (x2, x1)], [(y1, y2), (y2, y1)]
            for (x, m), (y, n) in [(u, v) for u in pairs[0] for v in pairs[1]] + \
                    [(v, u) for u in pairs[0] for v in pairs[1]]:
                if n == add(scale(m, -1), const(-1)):  # n = ~m
                    return binary("XOR", binary("AND", binary("XOR", x, y), m), y)
    if name == "EQ":  # a constant outside the range of a bounded non-negative value
        for x, y in ((a, b), (b, a)):
            c, top = constant_of(y), _bound(x)
            if c is not None and top is not None and constant_of(x) is None \
                    and not 0 <= c <= top:
                return const(0)
    if name == "EQ":  # a == b exactly when a - b == 0: each side its positive terms
        diff = add(a, b, -1)
        plus = _norm({m: c for m, c in diff if c > 0})
        minus = _norm({m: -c for m, c in diff if c < 0})
        if plus and minus:
            a, b = plus, minus
    return binary(name, a, b)


# Round 8 (`factor`): comparisons negated and sign tests merged. Each holds on every
# pair of 64-bit integers (signed comparisons); the lowering is checked anyway.
def _negated(p: Poly) -> Poly | None:
    """`1 - p` for a comparison `p` against a constant, as one comparison, or None."""
    node = _node(p)
    if node is None or node[1] not in ("LT", "GT"):
        return None
    x, y = node[2], node[3]
    if constant_of(x) is not None:  # k < y is y > k; k > y is y < k
        x, y, node = y, x, ("op", "GT" if node[1] == "LT" else "LT", y, x)
    k = constant_of(y)
    if k is None:
        return None
    if node[1] == "LT" and k > INT64_MIN:  # not (x < k): x > k - 1
        return binary("GT", x, const(k - 1))
    if node[1] == "GT" and k < INT64_MAX:  # not (x > k): x < k + 1
        return binary("LT", x, const(k + 1))
    return None


def _sign_test(p: Poly) -> tuple[Poly, bool] | None:
    """(x, True) for `x < 0`, (x, False) for `x > -1` (either side written), or None."""
    node = _node(p)
    if node is None or node[1] not in ("LT", "GT"):
        return None
    x, y, name = node[2], node[3], node[1]
    if constant_of(x) is not None and constant_of(y) is None:
        x, y, name = y, x, "GT" if name == "LT" else "LT"
    k = constant_of(y)
    if name == "LT" and k == 0:
        return x, True
    if name == "GT" and k == -1:
        return x, False
    return None


def _logic(name: str, a: Poly, b: Poly) -> Poly | None:
    if name in ("XOR", "EQ"):  # cmp ^ 1 and cmp == 0 are the negated comparison
        for x, y in ((a, b), (b, a)):
            if constant_of(y) == (1 if name == "XOR" else 0):
                flipped = _negated(x)
                if flipped is not None:
                    return flipped
        return None
    if name not in ("AND", "OR"):
        return None
    # x < 0 and y < 0 is (x & y) < 0; x >= 0 and y >= 0 is (x | y) >= 0 (the sign bit);
    # likewise for OR. Operands of a chain of the same operation are looked at together.
    parts: list[Poly] = []

    def flatten(p: Poly) -> None:
        node = _node(p)
        if node is not None and node[1] == name:
            flatten(node[2])
            flatten(node[3])
        else:
            parts.append(p)

    flatten(a)
    flatten(b)
    for negative in (True, False):
        group = [(p, t) for p in parts if (t := _sign_test(p)) is not None
                 and t[1] == negative]
        if len(group) < 2:
            continue
        inner = name if negative else ("OR" if name == "AND" else "AND")
        joined = group[0][1][0]
        for _, (x, _) in group[1:]:
            joined = binary(inner, joined, x)
        test = binary("LT", joined, const(0)) if negative else binary("GT", joined, const(-1))
        rest = [p for p in parts if all(p is not q for q, _ in group)]
        out = test
        for p in rest:
            out = binary(name, out, p)
        return out
    return None


# ------------------------------------------------------------------------- lowering
_Code = tuple[Instr, ...]


def _cycles(code: _Code) -> int:
    return sum(OPS[i.op].cycles for i in code)


def _push(value: int) -> _Code:
    if not _I32[0] <= value <= _I32[1]:
        raise Bail(f"the constant {value} does not fit a PUSH")
    return (Instr(Opcode.PUSH, (value,)),)


def _power(k: int) -> int | None:
    return k.bit_length() - 1 if k > 0 and k & (k - 1) == 0 else None


def _times(k: int) -> _Code:
    """Code multiplying the top of the stack by k (k != 0)."""
    k = wrap64(k)
    if k == 1:
        return ()
    if k == -1:
        return (Instr(Opcode.NEG),)
    if k == 2:
        return (Instr(Opcode.DUP), Instr(Opcode.ADD))
    for sign, tail in ((1, ()), (-1, (Instr(Opcode.NEG),))):
        j = _power(sign * k)
        if j is not None and j < 64:
            return (Instr(Opcode.PUSH, (j,)), Instr(Opcode.SHL), *tail)
    return (*_push(k), Instr(Opcode.MUL))


_SYMMETRIC = ("AND", "OR", "XOR", "EQ")


class Lowerer:
    """Stack code for polynomials, cheapest of a few shapes, memoised."""

    def __init__(self, algebra: bool = False, factor: bool = False) -> None:
        self.memo: dict[Poly, _Code] = {}
        # Values already written (by `lower_shared`, for earlier outputs): a later value
        # containing a multiple of one is written from it, so the two share a node.
        self.avail: list[Poly] = []
        # Round 7: more shapes (division by 2^k as shifts, a factor taken out of a sum
        # with a remainder left, `(a | b) - (a & b)` as `a ^ b`); each is an identity on
        # 64-bit integers, and the lowering is checked like every candidate anyway.
        self.algebra = algebra
        # Round 8: a factor taken out of some of a sum's terms, a power of a binomial.
        self.factor = factor

    def atom(self, a: Atom) -> _Code:
        kind = a[0]
        if kind == "in":
            return (Instr(Opcode.SENSE, (a[1],)),)
        if kind == "mem":
            return (Instr(Opcode.LOAD, (a[1],)),)
        if kind == "op":
            if self.algebra and a[1] in ("DIV", "MOD"):
                shaped = self._power_division(a[1], a[2], a[3])
                if shaped is not None:
                    return shaped
            first, second = self.poly(a[2]), self.poly(a[3])
            if a[1] in _SYMMETRIC and _cycles(first) < _cycles(second):
                # the costlier operand first: a value the cheaper one repeats can then
                # be kept by a DUP under it (schedule.py) without a SWAP
                first, second = second, first
            return (*first, *second, Instr(Opcode[a[1]]))
        raise Bail("a value from below the region's entry stack")

    def _power_division(self, name: str, a: Poly, b: Poly) -> _Code | None:
        """`a / 2^k` and `a % 2^k` without `DIV`/`MOD` (8 cycles each), or None."""
        k = _power(constant_of(b) or 0)
        if k is None or k == 0:
            return None
        exact = all(c % (1 << k) == 0 for _, c in a)  # a is a multiple of 2^k
        if name == "MOD":
            if exact:
                return _push(0)
            if _non_negative(a):  # the remainder of a non-negative value: its low bits
                return (*self.poly(a), *_push((1 << k) - 1), Instr(Opcode.AND))
            return None
        if exact or _non_negative(a):  # truncation and flooring agree
            return (*self.poly(a), Instr(Opcode.PUSH, (k,)), Instr(Opcode.SHR))
        # Truncation toward zero: a negative dividend is biased by 2^k - 1 (by 1 when
        # k = 1: a - (a >> 63)) before the arithmetic shift, which floors.
        sign = (Instr(Opcode.DUP), Instr(Opcode.PUSH, (63,)), Instr(Opcode.SHR))
        bias = (*sign, Instr(Opcode.SUB)) if k == 1 else \
            (*sign, *_push((1 << k) - 1), Instr(Opcode.AND), Instr(Opcode.ADD))
        return (*self.poly(a), *bias, Instr(Opcode.PUSH, (k,)), Instr(Opcode.SHR))

    def mono(self, m: Mono) -> _Code:
        code: list[Instr] = []
        prev: Atom | None = None
        for n, a in enumerate(m):
            if a == prev:
                code += [Instr(Opcode.DUP), Instr(Opcode.MUL)] if n == 1 else \
                    [*self.atom(a), Instr(Opcode.MUL)]
            else:
                code += self.atom(a)
                if n:
                    code.append(Instr(Opcode.MUL))
            prev = a
        return tuple(code)

    def poly(self, p: Poly) -> _Code:
        hit = self.memo.get(p)
        if hit is None:
            hit = self.memo[p] = self._poly(p)
        return hit

    def offer(self, p: Poly) -> None:
        """Make `p` and the operands of its opaque nodes available to later values."""
        if p not in self.avail and constant_of(p) is None and not (
                len(p) == 1 and p[0][1] == 1 and len(p[0][0]) == 1
                and p[0][0][0][0] != "op"):  # more than an input, a slot or a constant
            self.avail.append(p)
        for mono, _ in p:
            for a in mono:
                if a[0] == "op":
                    self.offer(a[2])
                    self.offer(a[3])

    def _from_avail(self, p: Poly) -> _Code | None:
        """`p` as f·R + rest for a value R already written (the widest that fits)."""
        for r in sorted(self.avail, key=len, reverse=True):
            if r == p or len(r) > len(p):
                continue
            m, cr = next((m, c) for m, c in r if m)
            cp = dict(p).get(m, 0)
            if not cp or cp % cr:
                continue
            f = cp // cr
            rest = add(p, scale(r, f), -1)
            if len(rest) >= len(p):
                continue
            with contextlib.suppress(Bail):
                k = constant_of(rest)
                if k is not None:  # INC/DEC or a constant added
                    return (*self.poly(r), *_times(f), *self._constant(k))
                if f < 0:
                    return (*self.poly(rest), *self.poly(r), *_times(-f), Instr(Opcode.SUB))
                return (*self.poly(r), *_times(f), *self.poly(rest), Instr(Opcode.ADD))
        return None

    def _poly(self, p: Poly) -> _Code:
        c0 = constant_of(p)
        if c0 is not None:
            return _push(c0)
        if self.avail:
            shared = self._from_avail(p)
            if shared is not None:
                return shared
        terms = [(m, c) for m, c in p if m]
        k0 = dict(p).get((), 0)
        options: list[_Code] = [self._sum(terms, k0)]
        if k0 == -1:  # -q - 1 is NOT q
            with contextlib.suppress(Bail):
                options.append((*self.poly(add(scale(p, -1), const(-1))), Instr(Opcode.NOT)))
        if len(terms) > 1:
            g = 0
            for _, c in terms:
                g = gcd(g, c)
            for f in {g, -g} if g > 1 else {-1} if all(c < 0 for _, c in terms) else set():
                inner = tuple((m, c // f) for m, c in terms)
                with contextlib.suppress(Bail):
                    options.append((*self.poly(inner), *_times(f), *self._constant(k0)))
            common = set(terms[0][0])
            for m, _ in terms[1:]:
                common &= set(m)
            for a in sorted(common, key=_key):
                rest: dict[Mono, int] = {}
                for m, c in terms:
                    i = m.index(a)
                    rest[(*m[:i], *m[i + 1:])] = c
                with contextlib.suppress(Bail):
                    options.append((*self.poly(_norm(rest)), *self.atom(a), Instr(Opcode.MUL),
                                    *self._constant(k0)))
        if self.factor and k0 and terms and all(c < 0 for _, c in terms):
            # k − a − b from the constant down: no NEG of the first term
            with contextlib.suppress(Bail):
                down = list(_push(k0))
                for m, c in terms:
                    down += [*self.mono(m), *_times(-c), Instr(Opcode.SUB)]
                options.append(tuple(down))
        if self.algebra:
            options += self._shapes(p, terms, k0)
        return min(options, key=lambda code: (_cycles(code), len(code)))

    def _shapes(self, p: Poly, terms: list[tuple[Mono, int]], k0: int) -> list[_Code]:
        out: list[_Code] = []
        # A factor f taken out with a remainder: 16a + 15b = 16(a + b) - b.
        for f in sorted({abs(c) for _, c in terms if abs(c) > 1}):
            quotient = {m: (c + f // 2) // f for m, c in terms}
            if sum(1 for q in quotient.values() if q) < 2:
                continue
            rest = add(p, scale(_norm(quotient), f), -1)
            if all(c % f == 0 for _, c in terms) or constant_of(rest) is not None:
                continue  # the common factor above covers it
            with contextlib.suppress(Bail):
                negative = all(c < 0 for _, c in rest)
                tail = (*self.poly(scale(rest, -1)), Instr(Opcode.SUB)) if negative else \
                    (*self.poly(rest), Instr(Opcode.ADD))
                out.append((*self.poly(_norm(quotient)), *_times(f), *tail))
        # Factored by a sum with a constant: ab + ac + 4b + 4c = (a + 4)(b + c).
        atoms = sorted({a for m, _ in terms for a in m if m.count(a) == 1}, key=_key)
        for a in atoms:
            q = _norm({tuple(x for x in m if x != a): c for m, c in terms if a in m})
            if len(q) < 2 or constant_of(q) is not None:
                continue
            r = add(add(p, mul(atom(a), q), -1), const(k0), -1)
            (m0, c0), ratio = q[0], None
            c_r = dict(r).get(m0, 0)
            if c_r % c0 == 0:
                ratio = c_r // c0
            if ratio and add(r, scale(q, ratio), -1) == ():
                with contextlib.suppress(Bail):
                    out.append((*self.poly(q), *self.atom(a), *self._constant(ratio),
                                Instr(Opcode.MUL), *self._constant(k0)))
        if self.factor:
            out += self._partial_factors(p, terms, k0)
        # A square taken out: x² − 2xy + y² + rest = (x − y)² + rest.
        squares = {m[0]: c for m, c in terms if len(m) == 2 and m[0] == m[1] and c >= 1}
        for x, y in [(x, y) for x in squares for y in squares if _key(x) < _key(y)]:
            cross = dict(p).get(tuple(sorted((x, y), key=_key)), 0)
            if cross not in (2, -2):
                continue
            base = add(atom(x), atom(y), 1 if cross > 0 else -1)
            rest = add(p, mul(base, base), -1)
            with contextlib.suppress(Bail):
                head = (*self.poly(base), Instr(Opcode.DUP), Instr(Opcode.MUL))
                if not rest:
                    out.append(head)
                elif all(c < 0 for _, c in rest):
                    out.append((*head, *self.poly(scale(rest, -1)), Instr(Opcode.SUB)))
                else:
                    out.append((*head, *self.poly(rest), Instr(Opcode.ADD)))
        # c·(a | b) − c·(a & b) = c·(a ^ b); c·(a | b) + c·(a & b) = c·(a + b).
        single = {m[0]: c for m, c in terms if len(m) == 1 and m[0][0] == "op"}
        for x, c in single.items():
            other = ("op", "AND", x[2], x[3])
            if x[1] == "XOR" and single.get(other) == 2 * c:  # c·(a ^ b) + 2c·(a & b)
                rest = add(p, _norm({(x,): c, (other,): 2 * c}), -1)
                with contextlib.suppress(Bail):
                    out.append(self.poly(add(rest, scale(add(x[2], x[3]), c))))
            if x[1] != "OR":
                continue
            other = ("op", "AND", x[2], x[3])
            d = single.get(other)
            if d == -c or d == c:
                rest = add(p, _norm({(x,): c, (other,): d}), -1)
                pair = atom(("op", "XOR", x[2], x[3])) if d == -c else add(x[2], x[3])
                with contextlib.suppress(Bail):
                    out.append(self.poly(add(rest, scale(pair, c))))
        return out

    def _partial_factors(self, p: Poly, terms: list[tuple[Mono, int]], k0: int) -> list[_Code]:
        """Round 8 (`factor`): an atom taken out of the terms that have it, the others
        added after: ka + b(c − k) = (a − b)k + cb; and a power of a binomial,
        (x + c)^n for n in 2..4, written as one sum raised by DUP/MUL."""
        out: list[_Code] = []
        atoms = sorted({a for m, _ in terms for a in m}, key=_key)
        for a in atoms:
            having = [(m, c) for m, c in terms if a in m]
            if len(having) < 2 or len(having) == len(terms):
                continue  # one term has nothing to share; all terms: the common factor
            q = _norm({(*m[:m.index(a)], *m[m.index(a) + 1:]): c for m, c in having})
            rest = add(p, mul(atom(a), q), -1)
            with contextlib.suppress(Bail):
                head = (*self.poly(q), *self.atom(a), Instr(Opcode.MUL))
                if all(c < 0 for _, c in rest):
                    out.append((*head, *self.poly(scale(rest, -1)), Instr(Opcode.SUB)))
                else:
                    out.append((*head, *self.poly(rest), Instr(Opcode.ADD)))
        if len(atoms) == 1 and terms:
            x = atoms[0]
            n = max(len(m) for m, _ in terms)
            lead = dict(p).get((x,) * n, 0)
            below = dict(p).get((x,) * (n - 1), 0)
            if 2 <= n <= 4 and lead and below % (n * lead) == 0:
                base = add(atom(x), const(below // (n * lead)))
                power = base
                for _ in range(n - 1):
                    power = mul(power, base)
                if scale(power, lead) == p:
                    raise_to = {2: (Instr(Opcode.DUP), Instr(Opcode.MUL)),
                                3: (Instr(Opcode.DUP), Instr(Opcode.DUP), Instr(Opcode.MUL),
                                    Instr(Opcode.MUL)),
                                4: (Instr(Opcode.DUP), Instr(Opcode.MUL), Instr(Opcode.DUP),
                                    Instr(Opcode.MUL))}[n]
                    with contextlib.suppress(Bail):
                        out.append((*self.poly(base), *raise_to, *_times(lead)))
        return out

    @staticmethod
    def _constant(k: int) -> _Code:
        if k == 0:
            return ()
        if k == 1:
            return (Instr(Opcode.INC),)
        if k == -1:
            return (Instr(Opcode.DEC),)
        return (*_push(k), Instr(Opcode.ADD))

    def _sum(self, terms: list[tuple[Mono, int]], k0: int) -> _Code:
        ordered = sorted(terms, key=lambda t: t[1] < 0)  # a positive term first
        code: list[Instr] = []
        for n, (m, c) in enumerate(ordered):
            if n and c < 0:
                code += [*self.mono(m), *_times(-c), Instr(Opcode.SUB)]
            else:
                code += [*self.mono(m), *_times(c)]
                if n:
                    code.append(Instr(Opcode.ADD))
        return (*code, *self._constant(k0))


def lower(effect: Effect, depth: int, live_slots: set[int], *,
          algebra: bool = False, factor: bool = False) -> _Code:
    """Straight-line code with `effect` from a stack of `depth` entries (the slots in
    `live_slots` are written; the others are read by nobody after the region)."""
    low = Lowerer(algebra, factor)
    code: list[Instr] = []
    for value, channel in effect.emitted:
        if value == atom(("in", channel)):
            code.append(Instr(Opcode.INSTINCT, (channel,)))
        else:
            code += [*low.poly(value), Instr(Opcode.ACT, (channel,))]
    kept = 0
    while (kept < min(depth, len(effect.stack))
           and effect.stack[kept] == atom(("stk", kept))):
        kept += 1
    code += [Instr(Opcode.POP)] * (depth - kept)
    for value in effect.stack[kept:]:
        code += low.poly(value)
    pending = {s for s in live_slots if effect.memory[s] != atom(("mem", s))}
    while pending:  # a slot is written once no pending value reads its old content
        ready = sorted(s for s in pending if not any(
            _reads(effect.memory[t], s) for t in pending if t != s))
        if not ready:
            raise Bail("the slots written read each other's old values")
        s = ready[0]
        code += [*low.poly(effect.memory[s]), Instr(Opcode.STORE, (s,))]
        pending.remove(s)
    return tuple(code)


def _store_order(effect: Effect, live_slots: set[int]) -> list[int]:
    """The slots to write, in an order that reads no slot already overwritten."""
    order: list[int] = []
    pending = {s for s in live_slots if effect.memory[s] != atom(("mem", s))}
    while pending:
        ready = sorted(s for s in pending if not any(
            _reads(effect.memory[t], s) for t in pending if t != s))
        if not ready:
            raise Bail("the slots written read each other's old values")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


def lower_shared(effect: Effect, depth: int, live_slots: set[int], bound: int, *,
                 algebra: bool = False, budget: stackgen.Budget | None = None,
                 factor: bool = False) -> _Code | None:
    """Like `lower`, but a value several outputs share is computed once and kept on the
    stack (`stackgen.schedule`); None when no such code under `bound` cycles is found.
    Tried twice: each value in its own cheapest shape, then (with `algebra`) each value
    written in terms of the values written before it where it contains a multiple of
    one (`Lowerer.avail`: 3600h + 60m + s after 60h + m is 60(60h + m) + s)."""
    best: _Code | None = None
    for reuse in (False, True) if algebra else (False,):
        code = _shared(effect, depth, live_slots, bound, Lowerer(algebra, factor), reuse,
                       budget)
        if code is not None and (best is None or _cycles(code) < _cycles(best)):
            best, bound = code, _cycles(code)
    return best


def _shared(effect: Effect, depth: int, live_slots: set[int], bound: int, low: Lowerer,
            reuse: bool, budget: stackgen.Budget | None) -> _Code | None:
    def term(p: Poly) -> stackgen.Term:
        got = stackgen.terms_of(low.poly(p))
        if len(got) != 1:
            raise Bail("a value's code does not leave one value")
        if reuse:
            low.offer(p)
        return got[0]

    outputs: list[stackgen.Output] = []
    try:
        for value, channel in effect.emitted:
            if value == atom(("in", channel)):
                outputs.append(("instinct", None, channel))
            else:
                outputs.append(("act", term(value), channel))
        kept = 0
        while (kept < min(depth, len(effect.stack))
               and effect.stack[kept] == atom(("stk", kept))):
            kept += 1
        final = tuple(term(v) for v in effect.stack[kept:])
        for s in _store_order(effect, live_slots):
            outputs.append(("store", term(effect.memory[s]), s))
    except stackgen.Unsupported:
        return None
    pops = (Instr(Opcode.POP),) * (depth - kept)
    code = stackgen.schedule(outputs, final, bound - _cycles(pops), budget)
    return None if code is None else (*pops, *code)


def _reads(p: Poly, slot: int) -> bool:
    return _mentions(p, ("mem", slot))


def _mentions(p: Poly, a: Atom) -> bool:
    for m, _ in p:
        for x in m:
            if x == a or (x[0] == "op" and (_mentions(x[2], a) or _mentions(x[3], a))):
                return True
    return False


# --------------------------------------------------------------------------- regions
def depths(program: Program) -> dict[int, int] | None:
    """The stack depth at each reachable instruction, or None (a CALL, or a mismatch)."""
    out = {0: 0} if len(program) else {}
    work = [0] if len(program) else []
    while work:
        i = work.pop()
        ins = program.instrs[i]
        if ins.op in (Opcode.CALL, Opcode.RET):
            return None
        info = OPS[ins.op]
        d = out[i] - info.pops + info.pushes
        for j in analysis.successors(program, i):
            if j not in out:
                out[j] = d
                work.append(j)
            elif out[j] != d:
                return None
    return out


def regions(program: Program) -> Iterator[tuple[int, int]]:
    """Candidate regions, widest first: the whole program, each counted-loop candidate
    (a back edge with a few instructions before and after it), each if/else (a forward
    branch with a few instructions before it, to a few after its join), each basic
    block."""
    n = len(program)
    targets = jump_targets(program)
    yield 0, n
    seen = {(0, n)}
    for j, ins in enumerate(program.instrs):
        if ins.is_jump and ins.args[0] <= j:
            t = ins.args[0]
            for before in range(min(t, 8), -1, -1):
                for after in range(6, -1, -1):
                    r = (t - before, min(n, j + 1 + after))
                    if r not in seen:
                        seen.add(r)
                        yield r
    for j, ins in enumerate(program.instrs):  # an if/else: from before it to its join
        if ins.op in (Opcode.JZ, Opcode.JNZ) and ins.args[0] > j:
            t = ins.args[0]
            last = program.instrs[t - 1]
            join = last.args[0] if last.op is Opcode.JMP and last.args[0] >= t else t
            for before in range(min(j, 6), -1, -1):
                for after in range(4, -1, -1):
                    r = (j - before, min(n, join + after))
                    if r not in seen:
                        seen.add(r)
                        yield r
    start = 0
    for i in range(n + 1):
        if i == n or (i in targets and i > start):
            if (start, i) not in seen and i - start > 1:
                seen.add((start, i))
                yield start, i
            start = i
        if i < n and program.instrs[i].op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ,
                                              Opcode.HALT):
            if (start, i + 1) not in seen and i + 1 - start > 1:
                seen.add((start, i + 1))
                yield start, i + 1
            start = i + 1


def lift_region(program: Program, start: int, end: int,
                depth_at: dict[int, int], *, diamonds: bool = True,
                shared: bool = False, algebra: bool = False,
                budget: stackgen.Budget | None = None, factor: bool = False) -> Program | None:
    """The program with `[start, end)` lowered, if that is valid and cheaper; None if
    the region does not qualify; raises Bail when the lifter cannot follow it."""
    if start not in depth_at:
        return None
    for i, ins in enumerate(program.instrs):  # control enters only at `start`
        if ins.is_jump and start < ins.args[0] < end and not start <= i < end:
            return None
    # At the program's entry (when nothing jumps back to it) memory is all zeros.
    fresh = start == 0 and 0 not in jump_targets(program)
    try:
        effect = execute(program, start, end, depth_at[start], zeroed=fresh)
    except Fork:
        known = decided(program, start, end, depth_at[start], zeroed=fresh) \
            if algebra else None
        if known is not None:
            effect = known
        elif not diamonds:
            raise
        else:
            effect = merged(program, start, end, depth_at[start], zeroed=fresh)
    if algebra:
        effect = simplified(effect, factor)
    live = set() if effect.halts else {
        s for s in range(16) if analysis.observed(program, end, s)}
    code = _lowered(effect, depth_at[start], live, shared=shared, algebra=algebra,
                    budget=budget, factor=factor)
    if effect.halts:
        code = (*code, Instr(Opcode.HALT))
    if _cycles(code) >= effect.cycles:
        return None
    return program.replace(start, end - start, code)


def _lowered(effect: Effect, depth: int, live: set[int], *, shared: bool, algebra: bool,
             budget: stackgen.Budget | None, factor: bool) -> _Code:
    """The cheapest code found for `effect`: each value on its own, or (`shared`) values
    kept on the stack; with `factor`, also the effect with its remainders rewritten."""
    best: _Code | None = None
    variants = [effect]
    if factor:
        other = remainders(effect)
        if other is not None:  # first: the stack scheduler's budget is shared
            variants.insert(0, other)
    why: Bail | None = None
    for variant in variants:
        try:
            code = lower(variant, depth, live, algebra=algebra, factor=factor)
        except Bail as e:
            why = e
            continue
        if shared:
            better = lower_shared(variant, depth, live, _cycles(code), algebra=algebra,
                                  budget=budget, factor=factor)
            if better is not None:
                code = better
        if best is None or _cycles(code) < _cycles(best):
            best = code
    if best is None:
        raise why or Bail("no lowering")
    return best


def remainders(effect: Effect) -> Effect | None:
    """`effect` with each `a % k` written `a - k * (a / k)` where the effect also uses
    `a / k` (truncated division and remainder: the identity holds on every 64-bit `a`
    and non-zero `k`, wrapping included), so the quotient is computed once; None when
    no remainder has its quotient beside it."""
    divs: set[tuple[Poly, Poly]] = set()

    def collect(p: Poly) -> None:
        for mono, _ in p:
            for a in mono:
                if a[0] == "op":
                    if a[1] == "DIV":
                        divs.add((a[2], a[3]))
                    collect(a[2])
                    collect(a[3])

    for v, _ in effect.emitted:
        collect(v)
    for v in (*effect.stack, *effect.memory):
        collect(v)
    if not divs:
        return None
    changed = False

    def op(a: Atom, x: Poly, k: Poly) -> Poly:
        nonlocal changed
        kc = constant_of(k)
        if a[1] == "MOD" and (a[2], a[3]) in divs and kc is not None:
            changed = True
            return add(x, scale(atom(("op", "DIV", x, k)), kc), -1)
        return atom(("op", a[1], x, k))

    rewrite = _rebuilder(op)
    result = Effect(tuple((rewrite(v), ch) for v, ch in effect.emitted),
                    tuple(rewrite(v) for v in effect.stack),
                    tuple(rewrite(v) for v in effect.memory), effect.halts, effect.cycles,
                    effect.forks)
    return result if changed else None


# ------------------------------------------------- path splitting (round 8, `paths`)
def paths(program: Program, start: int, end: int, depth: int, *,
          zeroed: bool = False) -> list[Effect]:
    """Every path through `[start, end)`, each followed by its own decisions at the
    branches on values that are not constant; Bail beyond `MAX_PATHS` paths (or when a
    path is out of the lifter's reach)."""
    out: list[Effect] = []
    work: list[tuple[bool, ...]] = [()]
    while work:
        decide = work.pop()
        try:
            out.append(execute(program, start, end, depth, zeroed=zeroed, decide=decide))
        except Fork:
            if len(out) + len(work) + 2 > MAX_PATHS:
                raise Bail(f"more than {MAX_PATHS} paths") from None
            work += [(*decide, True), (*decide, False)]
    return out


@dataclass(frozen=True)
class _Label:
    node: int


def _tree(effects: list[Effect], level: int, low: Callable[[Effect], _Code],
          cond_code: Callable[[Poly], tuple[_Code, bool]],
          blocks: list[list[Any]]) -> tuple[int, float]:
    """Lay out the decision tree of `effects` (paths sharing their first `level`
    decisions) as blocks; (the block index of its root, mean cycles over its paths)."""
    if len(effects) == 1 and len(effects[0].forks) == level:
        leaf = effects[0]
        code = (*low(leaf), Instr(Opcode.HALT))
        blocks.append(list(code))
        return len(blocks) - 1, float(_cycles(code))
    if any(len(e.forks) <= level for e in effects):
        raise Bail("paths with one prefix end differently")
    cond = effects[0].forks[level][0]
    yes = [e for e in effects if e.forks[level][1]]
    no = [e for e in effects if not e.forks[level][1]]
    if not yes or not no:  # the other side is unreachable from here
        raise Bail("a branch with one side never followed")
    index = len(blocks)
    blocks.append([])
    y, cy = _tree(yes, level + 1, low, cond_code, blocks)
    n, cn = _tree(no, level + 1, low, cond_code, blocks)
    if _flat(blocks, y) == _flat(blocks, n):  # the branch decides nothing observable
        blocks[index] = [_Label(n)]
        return index, cn
    code, inverted = cond_code(cond)
    # `cond` is not zero on the `yes` paths; `inverted` code is zero exactly there.
    jump = Instr(Opcode.JZ if inverted else Opcode.JNZ, (0,))
    blocks[index] = [*code, (jump, _Label(y)), _Label(n)]
    head = _cycles(code) + OPS[jump.op].cycles
    return index, head + (cy * len(yes) + cn * len(no)) / len(effects)


def _flat(blocks: list[list[Any]], index: int) -> tuple[Any, ...]:
    """Block `index` with the blocks it falls into or jumps to, as one comparable tree."""
    out: list[Any] = []
    for item in blocks[index]:
        if isinstance(item, _Label):
            out.append(_flat(blocks, item.node))
        elif isinstance(item, tuple):
            out.append((item[0].op, _flat(blocks, item[1].node)))
        else:
            out.append(item)
    return tuple(out)


def _emit(blocks: list[list[Any]], root: int) -> _Code:
    """The blocks laid out from `root`, each fall-through written in line, each jump
    target after it, jump operands resolved to instruction indices (from 0)."""
    code: list[Any] = []
    at: dict[int, int] = {}
    pending: list[int] = [root]
    while pending:
        node = pending.pop(0)
        if node in at:
            continue
        while True:
            at[node] = len(code)
            tail: int | None = None
            for item in blocks[node]:
                if isinstance(item, _Label):
                    tail = item.node
                elif isinstance(item, tuple):
                    code.append(item)
                    pending.append(item[1].node)
                else:
                    code.append(item)
            if tail is None:
                break
            if tail in at:  # shared tail already laid out: jump to it
                code.append((Instr(Opcode.JMP, (0,)), _Label(tail)))
                break
            node = tail
    return tuple(Instr(i[0].op, (at[i[1].node],)) if isinstance(i, tuple) else i
                 for i in code)


def _operands(cond: Poly) -> list[Poly]:
    """The operands of a comparison `cond` that are more than an input, slot or constant
    (or `cond` itself when it is no comparison)."""
    node = _node(cond)
    parts = [node[2], node[3]] if node is not None and node[1] in _BOOLEAN else [cond]
    return [p for p in parts if len(p) > 1 or (p and len(p[0][0]) > 1) or
            (p and p[0][0] and p[0][0][0][0] == "op")]


def _uses(v: Poly, x: Poly) -> bool:
    """Whether `v` holds `x` (or −x) as a part of its sum, or inside an opaque node."""
    terms = dict(v)
    for r in (1, -1):
        if all(terms.get(m) == wrap64(r * c) for m, c in x):
            return True
    return any(_uses(a[2], x) or _uses(a[3], x)
               for mono, _ in v for a in mono if a[0] == "op")


def split(program: Program, start: int, depth_at: dict[int, int], *,
          shared: bool = False, algebra: bool = False,
          budget: stackgen.Budget | None = None, factor: bool = False) -> Program | None:
    """The program with `[start, end of program)` rewritten as a tree of its branches on
    non-constant values, each path to its HALT lowered on its own as straight-line code
    (values it computed before a branch are computed again, or not at all, on each
    side); None when that is not cheaper on the mean path, Bail when out of reach."""
    n = len(program)
    if start not in depth_at:
        return None
    for i, ins in enumerate(program.instrs):  # control enters only at `start`
        if ins.is_jump and start < ins.args[0] < n and not start <= i < n:
            return None
    depth = depth_at[start]
    fresh = start == 0 and 0 not in jump_targets(program)
    effects = paths(program, start, n, depth, zeroed=fresh)
    if len(effects) < 2 or not all(e.halts for e in effects):
        return None
    kept = [x for e in effects for cond, _ in e.forks for x in _operands(cond)]
    if any(_uses(v, x) for e in effects for v, _ in e.emitted for x in kept):
        # A value the branch tests is also an output after it: code that keeps it on
        # the stack across the branch (a region's lowering, or the search) does better
        # than computing it again on each side, and a split there is a basin.
        raise Bail("a value tested by a branch is used after it")
    tidy = _simplifier(factor) if algebra else None

    def low(effect: Effect) -> _Code:
        if tidy is not None:
            effect = simplified(effect, factor, tidy)
        return _lowered(effect, depth, set(), shared=shared, algebra=algebra, budget=budget,
                        factor=factor)

    lowerer = Lowerer(algebra, factor)

    def cond_code(cond: Poly) -> tuple[_Code, bool]:
        if tidy is not None:
            cond = tidy(cond)
        node = _node(cond)
        if node is not None and node[1] == "EQ" and constant_of(node[3]) == 0:
            return lowerer.poly(node[2]), True  # branch on x itself, not on x == 0
        return lowerer.poly(cond), False

    blocks: list[list[Any]] = []
    root, mean = _tree(effects, 0, low, cond_code, blocks)
    before = sum(e.cycles for e in effects) / len(effects)
    if mean >= before - EPSILON:
        return None
    tail = _emit(blocks, root)
    shifted = tuple(Instr(i.op, (i.args[0] + start,)) if i.is_jump else i for i in tail)
    return Program((*program.instrs[:start], *shifted), program.params)


EPSILON = 1e-9


_MEMO: dict[tuple[Any, ...], tuple[Program, ...]] = {}


def proposals(program: Program, limit: int = 6, *, diamonds: bool = True,
              shared: bool = False, algebra: bool = False,
              split_paths: bool = False, factor: bool = False) -> tuple[Program, ...]:
    """Up to `limit` distinct liftings of `program` (widest regions first; with
    `split_paths`, then the path-split tail from the entry and from after each loop),
    each put through the sound rewrite table; memoised per process (a pure function)."""
    key = (program.instrs, program.params, limit, diamonds, shared, algebra, split_paths,
           factor)
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    out: list[Program] = []
    depth_at = depths(program)
    budget = stackgen.Budget()
    if depth_at is not None:
        for start, end in regions(program):
            try:
                lifted = lift_region(program, start, end, depth_at, diamonds=diamonds,
                                     shared=shared, algebra=algebra, budget=budget,
                                     factor=factor)
            except Bail:
                continue
            if lifted is None:
                continue
            lifted = peephole(lifted)[0]
            if lifted != program and lifted not in out:
                out.append(lifted)
                if len(out) >= limit:
                    break
    # After the regions (and past `limit`): a region's lowering keeps a value computed
    # before a branch on the stack, which a split computes again on each side; tried
    # first, the split led the start descent into its basin (fresh7's abs_difference).
    if depth_at is not None and split_paths:
        tree_budget = stackgen.Budget()  # its own: the regions may have spent theirs
        starts = [0, *sorted({j + 1 for j, ins in enumerate(program.instrs)
                              if ins.is_jump and ins.args[0] <= j})]
        for start in starts:
            try:
                tree = split(program, start, depth_at, shared=shared, algebra=algebra,
                             budget=tree_budget, factor=factor)
            except Bail:
                continue
            if tree is not None:
                tree = peephole(tree)[0]
                if tree != program and tree not in out:
                    out.append(tree)
    if len(_MEMO) > 4096:
        _MEMO.clear()
    result = _MEMO[key] = tuple(out)
    return result
