"""FLUX: a small deterministic stack VM whose programs evolve (spec: docs/flux.md)."""

from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.governance import register
from ouroboros.capabilities.flux.isa import Image, Opcode
from ouroboros.capabilities.flux.program import Instr, Program
from ouroboros.capabilities.flux.verifier import Verdict, verify
from ouroboros.capabilities.flux.vm import RunResult, run

__all__ = [
    "AssemblyError",
    "Image",
    "Instr",
    "Opcode",
    "Program",
    "RunResult",
    "Verdict",
    "assemble",
    "disassemble",
    "register",
    "run",
    "verify",
]
