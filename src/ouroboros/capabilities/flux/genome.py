"""The compressed genome form of a FLUX program and its higher-level mutations.

A genome is a tuple of genes: plain instructions whose jumps name *labels*, `Label`
markers, `Repeat(body, count)` for a pattern that occurs back to back (folded), and
`Loop(body, jump)` for a simple loop extracted from `L: body; J L` where L is jumped to
only from there and the body has no jumps or labels. NOPs are dropped.

Round trip: `decode(encode(p)) == strip_nops(p)` and `encode(decode(g)) == g` for any
genome `encode` produced (labels are numbered by position, folding is greedy and
deterministic, so the encoding is canonical).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ouroboros.capabilities.flux.isa import OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program, strip_nops

MAX_PATTERN = 4


@dataclass(frozen=True)
class Label:
    id: int


@dataclass(frozen=True)
class Op:
    """One instruction; for a jump, `args[0]` is a label id."""

    instr: Instr


@dataclass(frozen=True)
class Repeat:
    body: tuple[Op, ...]
    count: int


@dataclass(frozen=True)
class Loop:
    body: tuple[Op, ...]
    jump: Opcode  # JMP, JZ or JNZ back to the start of body


Gene = Label | Op | Repeat | Loop


@dataclass(frozen=True)
class Genome:
    genes: tuple[Gene, ...]
    params: tuple[int, ...] = ()


def encode(program: Program) -> Genome:
    program = strip_nops(program)
    targets = sorted({ins.args[0] for ins in program.instrs if ins.is_jump})
    label_at = {t: n for n, t in enumerate(targets)}
    flat: list[Label | Op] = []
    for index, ins in enumerate(program.instrs):
        if index in label_at:
            flat.append(Label(label_at[index]))
        if ins.is_jump:
            ins = Instr(ins.op, (label_at[ins.args[0]],))
        flat.append(Op(ins))
    for t in targets:
        if t >= len(program.instrs):
            flat.append(Label(label_at[t]))
    genes = _extract_loops(flat)
    return Genome(_renumber(_fold(genes)), program.params)


def _extract_loops(flat: list[Label | Op]) -> list[Gene]:
    uses: dict[int, int] = {}
    for g in flat:
        if isinstance(g, Op) and g.instr.is_jump:
            uses[g.instr.args[0]] = uses.get(g.instr.args[0], 0) + 1
    out: list[Gene] = []
    i = 0
    while i < len(flat):
        g = flat[i]
        if isinstance(g, Label) and uses.get(g.id) == 1:
            j = i + 1
            while j < len(flat) and isinstance(flat[j], Op) and not flat[j].instr.is_jump:  # type: ignore[union-attr]
                j += 1
            end = flat[j] if j < len(flat) else None
            if (isinstance(end, Op) and end.instr.op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ)
                    and end.instr.args[0] == g.id and j > i + 1):
                body = tuple(x for x in flat[i + 1:j] if isinstance(x, Op))
                out.append(Loop(body, end.instr.op))
                i = j + 1
                continue
        out.append(g)
        i += 1
    return out


def _fold(genes: list[Gene]) -> tuple[Gene, ...]:
    out: list[Gene] = []
    i = 0
    while i < len(genes):
        best: tuple[int, int] | None = None  # (pattern length, repetitions)
        for width in range(1, MAX_PATTERN + 1):
            pattern = genes[i:i + width]
            if len(pattern) < width or not all(_plain(g) for g in pattern):
                break
            reps = 1
            while genes[i + reps * width:i + (reps + 1) * width] == pattern:
                reps += 1
            if reps > 1 and (best is None or width * reps > best[0] * best[1]):
                best = (width, reps)
        if best is None:
            out.append(genes[i])
            i += 1
        else:
            width, reps = best
            body = tuple(g for g in genes[i:i + width] if isinstance(g, Op))
            out.append(Repeat(body, reps))
            i += width * reps
    return tuple(out)


def _plain(gene: Gene) -> bool:
    return isinstance(gene, Op) and not gene.instr.is_jump


def _renumber(genes: tuple[Gene, ...]) -> tuple[Gene, ...]:
    """Number labels by position so equal programs give equal genomes."""
    order = {g.id: n for n, g in enumerate(x for x in genes if isinstance(x, Label))}
    return tuple(
        Label(order[g.id]) if isinstance(g, Label)
        else Op(Instr(g.instr.op, (order[g.instr.args[0]],))) if isinstance(g, Op) and g.instr.is_jump
        else g
        for g in genes
    )


def decode(genome: Genome) -> Program:
    labels: dict[int, int] = {}
    instrs: list[Instr] = []
    fixups: list[tuple[int, int]] = []  # (instruction index, label id)
    loops: list[tuple[int, int]] = []  # (jump index, loop start)
    for gene in genome.genes:
        if isinstance(gene, Label):
            labels[gene.id] = len(instrs)
        elif isinstance(gene, Op):
            if gene.instr.is_jump:
                fixups.append((len(instrs), gene.instr.args[0]))
            instrs.append(gene.instr)
        elif isinstance(gene, Repeat):
            for _ in range(gene.count):
                instrs.extend(op.instr for op in gene.body)
        else:
            start = len(instrs)
            instrs.extend(op.instr for op in gene.body)
            loops.append((len(instrs), start))
            instrs.append(Instr(gene.jump, (start,)))
    for index, label in fixups:
        instrs[index] = Instr(instrs[index].op, (labels.get(label, len(instrs)),))
    return Program(tuple(instrs), genome.params)


def _random_op(like: Instr, rng: random.Random) -> Instr:
    """Gene substitution: another instruction with the same stack effect and operands."""
    info = OPS[like.op]
    same = [op for op, i in OPS.items()
            if (i.pops, i.pushes, i.operands) == (info.pops, info.pushes, info.operands)
            and op not in (Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL, Opcode.RET, Opcode.HALT)]
    return Instr(rng.choice(same), like.args) if same else like


def mutate(genome: Genome, rng: random.Random) -> tuple[Genome, str]:
    """One genome-level mutation: gene substitution, amplification or pruning."""
    genes = list(genome.genes)
    editable = [i for i, g in enumerate(genes) if isinstance(g, Op | Repeat)
                and not (isinstance(g, Op) and g.instr.op in (Opcode.HALT, Opcode.RET))]
    if not editable:
        return genome, "none"
    index = rng.choice(editable)
    gene = genes[index]
    kind = rng.choice(("substitute", "amplify", "prune"))
    if kind == "substitute" and isinstance(gene, Op) and not gene.instr.is_jump:
        genes[index] = Op(_random_op(gene.instr, rng))
    elif kind == "amplify":
        genes[index] = (Repeat(gene.body, gene.count + 1) if isinstance(gene, Repeat)
                        else Repeat((gene,), 2) if isinstance(gene, Op) and not gene.instr.is_jump
                        else gene)
    elif kind == "prune":
        if isinstance(gene, Repeat) and gene.count > 2:
            genes[index] = Repeat(gene.body, gene.count - 1)
        else:
            del genes[index]
    return Genome(tuple(genes), genome.params), kind
