"""Stack scheduling of a lifted region's values as one DAG (round 7).

`lift.lower` writes each value the region emits, leaves or stores on its own, so a value
two outputs share is computed twice (`price_with_tax`: the product three times). Here
each value's cheapest code (`lift.Lowerer`) is read back into a term tree, equal
subterms are one node, and a bounded best-first search over stack states finds the
cheapest instruction sequence that emits the outputs in order and leaves the required
stack: a node is computed once and kept on the stack by `DUP`/`OVER`/`SWAP` where that is
cheaper than computing it again. Moves: push a leaf the remaining outputs need (`SENSE`,
`LOAD`, `PUSH`, `PARAM`), an operation whose result is a node they need, `DUP`,
`OVER`, `SWAP`, `POP` (of a value no longer needed or held twice), `ACT`/`STORE` of the
next output when it is on top, `INSTINCT`. One derivation beyond the term's own
operation: `a % c` from `a` and `a / c` below it (`PUSH c; MUL; SUB`), for a region that
needs both.

Bounds: `MAX_EXPANDED` states, `MAX_HEIGHT` values above the region's kept entry stack;
the search only looks for code cheaper than the per-value lowering, and returns None when
it finds none within the bounds (the caller keeps the per-value code). Like every
lowering, the result is a proposal: scored as one evaluation and checked for
equivalence against the original program, so a fault here costs evaluations, never
correctness.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from .isa import OPS, Opcode
from .program import Instr

MAX_EXPANDED = 1500  # states expanded in one search (the suites' successes need under 800)
MAX_PER_PROGRAM = 3000  # states expanded for all the regions of one program
MAX_HEIGHT = 6  # values above the kept entry stack

Term = tuple[Any, ...]
_LEAVES = (Opcode.PUSH, Opcode.SENSE, Opcode.LOAD, Opcode.PARAM)
_UNARY = (Opcode.NEG, Opcode.NOT, Opcode.INC, Opcode.DEC)
_COMMUTATIVE = frozenset({"ADD", "MUL", "AND", "OR", "XOR", "EQ"})
_BINARY = (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MOD, Opcode.AND,
           Opcode.OR, Opcode.XOR, Opcode.SHL, Opcode.SHR, Opcode.EQ, Opcode.LT, Opcode.GT)


class Unsupported(Exception):
    """Code the term reader does not model."""


def make(name: str, *children: Term) -> Term:
    """A node, its operands in a canonical order where the operation is symmetric
    (`a < b` and `b > a` are one node too)."""
    if name in _COMMUTATIVE and repr(children[0]) > repr(children[1]):
        children = (children[1], children[0])
    if name == "GT":
        name, children = "LT", (children[1], children[0])
    return (name, *children)


def terms_of(code: tuple[Instr, ...], stack: list[Term] | None = None) -> list[Term]:
    """The values `code` leaves, as terms (a `DUP` shares a node)."""
    st = list(stack or [])
    for ins in code:
        op = ins.op
        if op in _LEAVES:
            st.append((op.name, ins.args[0]))
        elif op is Opcode.DUP:
            st.append(st[-1])
        elif op is Opcode.OVER:
            st.append(st[-2])
        elif op is Opcode.SWAP:
            st[-1], st[-2] = st[-2], st[-1]
        elif op is Opcode.POP:
            st.pop()
        elif op in _UNARY:
            st.append(make(op.name, st.pop()))
        elif op in _BINARY:
            b, a = st.pop(), st.pop()
            st.append(make(op.name, a, b))
        else:
            raise Unsupported(op.name)
    return st


def _subterms(t: Term, into: set[Term]) -> None:
    if t in into:
        return
    into.add(t)
    if t[0] not in {o.name for o in _LEAVES}:
        for child in t[1:]:
            _subterms(child, into)


_LEAF_NAMES = frozenset(o.name for o in _LEAVES)


def _code_of_leaf(t: Term) -> Instr:
    return Instr(Opcode[t[0]], (t[1],))


def _shares(roots: list[Term]) -> bool:
    """Whether some node is needed twice (by two outputs, or twice within one) and is
    more than a `PUSH`, the only case where keeping a copy on the stack can pay."""
    count: dict[Term, int] = {}

    def walk(t: Term) -> None:
        count[t] = count.get(t, 0) + 1
        if count[t] == 1 and t[0] not in _LEAF_NAMES:
            for child in t[1:]:
                walk(child)

    for root in roots:
        walk(root)
    return any(c > 1 and t[0] != "PUSH" for t, c in count.items())


# An output: ("act", term, channel), ("store", term, slot) or ("instinct", None, channel).
Output = tuple[str, Term | None, int]


class Budget:
    """States the searches for one program may still expand, in all (`MAX_PER_PROGRAM`):
    a program has many regions, and a search that finds nothing spends its whole cap."""

    def __init__(self, left: int = 0) -> None:
        self.left = left or MAX_PER_PROGRAM


# key -> (code, states expanded, the cap it ran under)
_MEMO: dict[tuple[Any, ...], tuple[tuple[Instr, ...] | None, int, int]] = {}


def schedule(outputs: list[Output], final: tuple[Term, ...], bound: int,
             budget: Budget | None = None) -> tuple[Instr, ...] | None:
    """`_schedule` within what `budget` has left, memoised per process. A remembered
    search is charged and cut exactly as a fresh one would be (the search is
    deterministic, so a shorter cap only cuts it earlier): the result does not depend
    on what a worker computed before."""
    budget = budget or Budget()
    if budget.left <= 0:
        return None
    cap = min(MAX_EXPANDED, budget.left)
    key = (tuple(outputs), final, bound)
    hit = _MEMO.get(key)
    if hit is None or (hit[1] > hit[2] and cap > hit[2]):  # new, or cut shorter before
        code, expanded = _schedule(outputs, final, bound, cap)
        if len(_MEMO) > 4096:
            _MEMO.clear()
        hit = _MEMO[key] = code, expanded, cap
    code, expanded, _ = hit
    if expanded > cap:  # a fresh search with this cap stops after cap + 1 states
        code, expanded = None, cap + 1
    budget.left -= expanded
    return code


def _schedule(outputs: list[Output], final: tuple[Term, ...], bound: int,
              cap: int) -> tuple[tuple[Instr, ...] | None, int]:
    """The cheapest code (fewer than `bound` cycles) that performs `outputs` in order
    from an empty stack and then leaves exactly `final`; None if none is found within
    the bounds. Slots stored are not loaded again afterwards."""
    n = len(outputs)
    if not _shares([o[1] for o in outputs if o[1] is not None] + list(final)):
        return None, 0  # nothing to keep on the stack: the per-value code is as good
    # useful[i]: the nodes outputs i.. and the final stack still need.
    useful: list[frozenset[Term]] = [frozenset()] * (n + 1)
    acc: set[Term] = set()
    for t in final:
        _subterms(t, acc)
    useful[n] = frozenset(acc)
    for i in range(n - 1, -1, -1):
        value = outputs[i][1]
        if value is not None:
            _subterms(value, acc)
        useful[i] = frozenset(acc)
    stored_before: list[frozenset[int]] = []
    done: set[int] = set()
    for kind, _, arg in outputs:
        stored_before.append(frozenset(done))
        if kind == "store":
            done.add(arg)
    stored_before.append(frozenset(done))
    # Derivations of each node: (operands on the stack, bottom first; code; cycles).
    derive: dict[Term, list[tuple[tuple[Term, ...], tuple[Instr, ...], int]]] = {}
    for t in useful[0]:
        name = t[0]
        if name in _LEAF_NAMES:
            continue
        ways = derive.setdefault(t, [])
        op = Opcode[name]
        cyc = OPS[op].cycles
        if len(t) == 2:
            ways.append(((t[1],), (Instr(op),), cyc))
            continue
        a, b = t[1], t[2]
        ways.append(((a, b), (Instr(op),), cyc))
        if name in _COMMUTATIVE and a != b:
            ways.append(((b, a), (Instr(op),), cyc))
        if name == "LT":  # b > a
            ways.append(((b, a), (Instr(Opcode.GT),), cyc))
        if b[0] == "PUSH":  # the constant pushed on the way (saves a search state)
            ways.append(((a,), (Instr(Opcode.PUSH, (b[1],)), Instr(op)), cyc + 1))
        if name == "MOD" and b[0] == "PUSH" and ("DIV", a, b) in useful[0]:
            ways.append(((a, ("DIV", a, b)),
                         (Instr(Opcode.PUSH, (b[1],)), Instr(Opcode.MUL), Instr(Opcode.SUB)),
                         5))

    # A lower bound of what a node not on the stack costs to make, its operands apart.
    own: dict[Term, int] = {}
    for t, ways in derive.items():
        own[t] = min(cyc - sum(OPS[ins.op].cycles for ins in piece if ins.op is Opcode.PUSH)
                     for _, piece, cyc in ways)
    # The search runs on small integers: a nested term hashes anew at every lookup.
    terms = sorted(useful[0] | set(final), key=repr)
    ids = {t: k for k, t in enumerate(terms)}
    leaf_ins = [_code_of_leaf(t) if t[0] in _LEAF_NAMES else None for t in terms]
    load_slot = [t[1] if t[0] == "LOAD" else -1 for t in terms]
    cost = [OPS[Opcode[t[0]]].cycles if t[0] in _LEAF_NAMES else own[t] for t in terms]
    # Constants a node's derivation pushes itself (not taken from the stack).
    kids = [tuple(ids[c] for c in t[1:]) if t[0] not in _LEAF_NAMES else () for t in terms]
    pushed_by = [
        {ids[t[2]]} if len(t) == 3 and t[0] not in _LEAF_NAMES and t[2][0] == "PUSH"
        and any(len(o) == 1 for o, _, _ in derive[t]) else set() for t in terms]
    ways_of = [[(tuple(ids[o] for o in operands), piece, cyc)
                for operands, piece, cyc in derive.get(t, ())] for t in terms]
    need_at = [frozenset(ids[t] for t in u) for u in useful]
    out_ids = [(kind, -1 if t is None else ids[t], arg) for kind, t, arg in outputs]
    goal = tuple(ids[t] for t in final)
    roots = [[x for _, x, _ in out_ids[i:] if x >= 0] + list(goal) for i in range(n + 1)]
    State = tuple[tuple[int, ...], int]
    known: dict[State, tuple[int, set[int]]] = {}

    def missing(stack: tuple[int, ...], i: int) -> tuple[int, set[int]]:
        """The nodes the outputs left need that the stack lacks (they must be made), and
        a lower bound of the cycles still to spend: 2 per output left, what those nodes
        cost to make, 1 per value nothing needs any more (it must be popped), 1 per use
        of a node beyond the copies the stack holds or will make."""
        hit = known.get((stack, i))
        if hit is not None:
            return hit
        need = need_at[i]
        total = 2 * (n - i) + sum(1 for x in stack if x not in need)
        on = set(stack)
        seen: set[int] = set()
        demand: dict[int, int] = {}  # uses still to come: each consumes one copy
        for x in roots[i]:
            demand[x] = demand.get(x, 0) + 1
        work = [x for x in roots[i] if x not in on]
        while work:
            x = work.pop()
            if x in seen:
                continue
            seen.add(x)
            total += cost[x]
            for c in kids[x]:
                if c not in pushed_by[x]:
                    demand[c] = demand.get(c, 0) + 1
                if c not in on:
                    work.append(c)
        for x, d in demand.items():
            if d > 1 or x in on:
                total += max(0, d - stack.count(x) - (x in seen))
        known[(stack, i)] = total, seen
        return total, seen

    start: State = ((), 0)
    tie = itertools.count()
    # ties go to the deeper state (-g): the search then runs down one promising line
    heap: list[tuple[int, int, int, tuple[int, ...], int]] = [
        (missing((), 0)[0], 0, next(tie), (), 0)]
    best: dict[State, int] = {start: 0}
    parent: dict[State, tuple[State, tuple[Instr, ...]]] = {}
    expanded = 0
    while heap:
        f, negative_g, _, stack, i = heapq.heappop(heap)
        g = -negative_g
        if f >= bound:
            return None, expanded
        if best.get((stack, i), g) < g:
            continue
        if i == n and stack == goal:
            code: list[Instr] = []
            state = (stack, i)
            while state in parent:
                state, piece = parent[state]
                code[:0] = piece
            return tuple(code), expanded
        expanded += 1
        if expanded > cap:
            return None, expanded
        need = need_at[i]
        # What to make next: a node the outputs need that the stack lacks, or one too
        # deep for DUP/OVER to copy (made again instead of shuffled up).
        make_next = missing(stack, i)[1] | (need & set(stack[:-2]))
        nxt: list[tuple[tuple[int, ...], int, tuple[Instr, ...], int]] = []
        if i < n:
            kind, x, arg = out_ids[i]
            if kind == "instinct":
                nxt.append((stack, i + 1, (Instr(Opcode.INSTINCT, (arg,)),), 2))
            elif stack and stack[-1] == x:
                op = Opcode.ACT if kind == "act" else Opcode.STORE
                nxt.append((stack[:-1], i + 1, (Instr(op, (arg,)),), 2))
        if len(stack) < MAX_HEIGHT:
            if stack and stack[-1] in need:
                nxt.append(((*stack, stack[-1]), i, (Instr(Opcode.DUP),), 1))
            if len(stack) > 1 and stack[-2] in need:
                nxt.append(((*stack, stack[-2]), i, (Instr(Opcode.OVER),), 1))
            for x in sorted(make_next):
                ins = leaf_ins[x]
                if ins is not None and load_slot[x] not in stored_before[i]:
                    nxt.append(((*stack, x), i, (ins,), OPS[ins.op].cycles))
        if len(stack) > 1 and stack[-1] != stack[-2]:
            nxt.append(((*stack[:-2], stack[-1], stack[-2]), i, (Instr(Opcode.SWAP),), 1))
        if stack and (stack[-1] not in need or stack[-1] in stack[:-1]):
            nxt.append((stack[:-1], i, (Instr(Opcode.POP),), 1))
        for x in sorted(make_next):
            for operands, piece, cyc in ways_of[x]:
                k = len(operands)
                if len(stack) >= k and stack[len(stack) - k:] == operands:
                    nxt.append(((*stack[:len(stack) - k], x), i, piece, cyc))
        for new_stack, j, piece, cyc in nxt:
            g2 = g + cyc
            key = (new_stack, j)
            if g2 < best.get(key, bound):
                best[key] = g2
                parent[key] = ((stack, i), piece)
                heapq.heappush(heap, (g2 + missing(new_stack, j)[0], -g2, next(tie), new_stack,
                                      j))
    return None, expanded
