"""The fast FLUX engine: translate a *verified* image to WebAssembly, run it on wasmtime.

A Python dispatch loop runs FLUX at about a million instructions a second; compiled to
native code through Cranelift the same program runs hundreds of times faster. The
translation relies on the verifier: a verified image cannot underflow or overflow its
stack, jump off a boundary or recurse, so the only checks left in the generated code
are the per-instruction cycle budget and division by zero. Cycles, steps, outputs and
traps are identical to the reference interpreter (tests/flux/test_engines.py).

Memory layout (one linear memory, grown when outputs need room):
inputs 0..2047 (256 x i64), data stack 2048..4095, memory slots 4096..4223,
call stack 4224..4479 (i32 block ids), outputs from 8192 as (value i64, channel i64).
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence

import wasmtime

from ouroboros.capabilities.flux.isa import (
    DECAY_SCALE,
    DEFAULT_FUEL,
    JUMPS,
    MAX_CALL_DEPTH,
    MEMORY_SLOTS,
    OPS,
    TERMINATORS,
    Decoded,
    Image,
    Opcode,
    wrap64,
)
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import RunResult

INPUTS, STACK, SLOTS, CALLS, OUT = 0, 2048, 4096, 4224, 8192
_STATUS = {0: None, 1: "division_by_zero", 2: "fuel_exhausted", 3: "call_overflow",
           4: "bad_jump", 5: "output_overflow"}

_BIN = {
    Opcode.ADD: "i64.add", Opcode.SUB: "i64.sub", Opcode.MUL: "i64.mul",
    Opcode.AND: "i64.and", Opcode.OR: "i64.or", Opcode.XOR: "i64.xor",
    Opcode.SHL: "i64.shl", Opcode.SHR: "i64.shr_s",
}
_CMP = {Opcode.EQ: "i64.eq", Opcode.LT: "i64.lt_s", Opcode.GT: "i64.gt_s"}

_SP = "(local.get $sp)"
_TOP = "(i64.load (i32.sub (local.get $sp) (i32.const 8)))"
_SECOND = "(i64.load (i32.sub (local.get $sp) (i32.const 16)))"


def _sp(delta: int) -> str:
    return f"(local.set $sp (i32.add (local.get $sp) (i32.const {delta})))"


def _push(expr: str) -> str:
    return f"(i64.store {_SP} {expr}) {_sp(8)}"


def _set_top(expr: str) -> str:
    return f"(i64.store (i32.sub (local.get $sp) (i32.const 8)) {expr})"


def _binary(expr: str) -> str:
    """Replace the top two values with expr (which may read $a = second, $b = top)."""
    return (f"(local.set $b {_TOP}) (local.set $a {_SECOND}) {_sp(-8)} {_set_top(expr)}")


def _exit(status: int) -> str:
    return f"(local.set $st (i32.const {status})) (br $done)"


def _emit(value: str, channel: int) -> str:
    return (
        "(if (i32.gt_u (i32.add (local.get $out) (i32.const 16))"
        " (i32.mul (memory.size) (i32.const 65536)))"
        f" (then (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then {_exit(5)}))))"
        f" (i64.store (local.get $out) {value})"
        f" (i64.store (i32.add (local.get $out) (i32.const 8)) (i64.const {channel}))"
        " (local.set $out (i32.add (local.get $out) (i32.const 16)))"
    )


def _goto(block: int) -> str:
    return f"(local.set $pc (i32.const {block})) (br $top)"


def _body(ins: Decoded, params: tuple[int, ...], block_of: dict[int, int]) -> str:
    op, args = ins.opcode, ins.args
    if op in _BIN:
        return _binary(f"({_BIN[op]} (local.get $a) (local.get $b))")
    if op in _CMP:
        return _binary(f"(i64.extend_i32_u ({_CMP[op]} (local.get $a) (local.get $b)))")
    if op is Opcode.DIV or op is Opcode.MOD:
        if op is Opcode.DIV:
            expr = ("(if (result i64) (i64.eq (local.get $b) (i64.const -1))"
                    " (then (i64.sub (i64.const 0) (local.get $a)))"
                    " (else (i64.div_s (local.get $a) (local.get $b))))")
        else:
            expr = "(i64.rem_s (local.get $a) (local.get $b))"
        return (f"(local.set $b {_TOP}) (if (i64.eqz (local.get $b)) (then {_exit(1)}))"
                f" (local.set $a {_SECOND}) {_sp(-8)} {_set_top(expr)}")
    simple = {
        Opcode.NOP: "",
        Opcode.POP: _sp(-8),
        Opcode.DUP: _push(_TOP),
        Opcode.OVER: _push(_SECOND),
        Opcode.SWAP: (f"(local.set $b {_TOP}) (local.set $a {_SECOND})"
                      " (i64.store (i32.sub (local.get $sp) (i32.const 16)) (local.get $b))"
                      f" {_set_top('(local.get $a)')}"),
        Opcode.NEG: _set_top(f"(i64.sub (i64.const 0) {_TOP})"),
        Opcode.INC: _set_top(f"(i64.add {_TOP} (i64.const 1))"),
        Opcode.DEC: _set_top(f"(i64.sub {_TOP} (i64.const 1))"),
        Opcode.NOT: _set_top(f"(i64.xor {_TOP} (i64.const -1))"),
        Opcode.HALT: _exit(0),
    }
    if op in simple:
        return simple[op]
    a0 = args[0] if args else 0
    if op is Opcode.PUSH:
        return _push(f"(i64.const {a0})")
    if op is Opcode.LOAD:
        return _push(f"(i64.load (i32.const {SLOTS + 8 * a0}))")
    if op is Opcode.STORE:
        return f"(i64.store (i32.const {SLOTS + 8 * a0}) {_TOP}) {_sp(-8)}"
    if op is Opcode.SENSE:
        return _push(f"(i64.load (i32.const {INPUTS + 8 * a0}))")
    if op is Opcode.ACT:
        return f"{_emit(_TOP, a0)} {_sp(-8)}"
    if op is Opcode.INSTINCT:
        return _emit(f"(i64.load (i32.const {INPUTS + 8 * a0}))", a0)
    if op is Opcode.PARAM:
        return _push(f"(i64.const {params[a0]})")
    if op is Opcode.THRESH:
        return _set_top(f"(i64.extend_i32_u (i64.ge_s {_TOP} (i64.const {params[a0]})))")
    if op is Opcode.DECAY:
        slot = SLOTS + 8 * a0
        return (f"(i64.store (i32.const {slot}) (i64.div_s (i64.mul (i64.load (i32.const {slot}))"
                f" (i64.const {params[args[1]]})) (i64.const {DECAY_SCALE})))")
    if op is Opcode.JMP:
        return _goto(block_of[a0])
    if op is Opcode.JZ or op is Opcode.JNZ:
        test = "i64.eqz" if op is Opcode.JZ else "i64.ne (i64.const 0)"
        return (f"(local.set $b {_TOP}) {_sp(-8)}"
                f" (if ({test} (local.get $b)) (then {_goto(block_of[a0])}))")
    if op is Opcode.CALL:
        ret_block = block_of[ins.offset + ins.size]
        return (f"(if (i32.ge_u (local.get $csp) (i32.const {MAX_CALL_DEPTH})) (then {_exit(3)}))"
                f" (i32.store (i32.add (i32.const {CALLS}) (i32.shl (local.get $csp) (i32.const 2)))"
                f" (i32.const {ret_block}))"
                " (local.set $csp (i32.add (local.get $csp) (i32.const 1)))"
                f" {_goto(block_of[a0])}")
    if op is Opcode.RET:
        return (f"(if (i32.eqz (local.get $csp)) (then {_exit(0)}))"
                " (local.set $csp (i32.sub (local.get $csp) (i32.const 1)))"
                " (local.set $pc (i32.load (i32.add (i32.const"
                f" {CALLS}) (i32.shl (local.get $csp) (i32.const 2))))) (br $top)")
    raise AssertionError(f"no translation for {op.name}")


def translate(image: Image) -> str:
    """WAT for a verified image (raises ValueError if it does not verify)."""
    verdict = verify(image)
    if not verdict.ok:
        raise ValueError("cannot translate an unverified program: " + "; ".join(verdict.reasons))
    instructions = verdict.instructions
    leaders = {0}
    for ins in instructions:
        if ins.opcode in JUMPS:
            leaders.add(ins.args[0])
        if ins.opcode in JUMPS or ins.opcode in TERMINATORS:
            leaders.add(ins.offset + ins.size)
    leaders.discard(len(image.code))
    order = sorted(leaders)
    block_of = {offset: i for i, offset in enumerate(order)}
    chunks: list[list[str]] = [[] for _ in order]
    current = -1
    for ins in instructions:
        if ins.offset in block_of:
            current = block_of[ins.offset]
        cost = OPS[ins.opcode].cycles
        chunks[current].append(
            f"(local.set $cyc (i64.add (local.get $cyc) (i64.const {cost})))"
            " (if (i64.gt_u (local.get $cyc) (local.get $fuel)) (then"
            f" (local.set $cyc (i64.sub (local.get $cyc) (i64.const {cost}))) {_exit(2)}))"
            " (local.set $steps (i64.add (local.get $steps) (i64.const 1)))"
            f" {_body(ins, image.params, block_of)}"
        )
    n = len(order)
    table = " ".join(f"$b{i}" for i in range(n))
    nested = f"(block $b0 (br_table {table} $b0 (local.get $pc)))"
    for i in range(n):
        code = "\n".join(chunks[i])
        nested = f"(block $b{i + 1} {nested}\n{code})" if i + 1 < n else f"{nested}\n{code}"
    return f"""(module
  (memory (export "memory") 1)
  (global $g_cycles (export "cycles") (mut i64) (i64.const 0))
  (global $g_steps (export "steps") (mut i64) (i64.const 0))
  (global $g_nout (export "nout") (mut i32) (i32.const 0))
  (func (export "run") (param $fuel i64) (result i32)
    (local $sp i32) (local $cyc i64) (local $steps i64) (local $pc i32) (local $csp i32)
    (local $out i32) (local $st i32) (local $a i64) (local $b i64)
    (local.set $sp (i32.const {STACK})) (local.set $out (i32.const {OUT}))
    (memory.fill (i32.const {SLOTS}) (i32.const 0) (i32.const {8 * MEMORY_SLOTS}))
    (block $done
      (loop $top
        {nested}
        {_exit(4)}))
    (global.set $g_cycles (local.get $cyc))
    (global.set $g_steps (local.get $steps))
    (global.set $g_nout (i32.shr_u (i32.sub (local.get $out) (i32.const {OUT})) (i32.const 4)))
    (local.get $st)))
"""


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.cranelift_opt_level = "speed"
    return wasmtime.Engine(config)


class CompiledProgram:
    """One image compiled and instantiated; `run` may be called many times."""

    def __init__(self, engine: wasmtime.Engine, image: Image) -> None:
        self.module = wasmtime.Module(engine, translate(image))
        self.store = wasmtime.Store(engine)
        instance = wasmtime.Instance(self.store, self.module, [])
        exports = instance.exports(self.store)
        self._run = exports["run"]
        self._memory = exports["memory"]
        self._globals = (exports["cycles"], exports["steps"], exports["nout"])
        assert isinstance(self._run, wasmtime.Func)
        assert isinstance(self._memory, wasmtime.Memory)

    def run(self, inputs: Sequence[int], fuel: int) -> RunResult:
        assert isinstance(self._run, wasmtime.Func) and isinstance(self._memory, wasmtime.Memory)
        values = [wrap64(v) for v in inputs[:256]]
        data = struct.pack(f"<{len(values)}q", *values) + bytes(8 * (256 - len(values)))
        self._memory.write(self.store, data, INPUTS)
        status = self._run(self.store, fuel)
        cycles, steps, nout = (g.value(self.store) for g in self._globals)  # type: ignore[union-attr]
        raw = self._memory.read(self.store, OUT, OUT + 16 * int(nout)) if nout else b""
        pairs = struct.unpack(f"<{2 * int(nout)}q", raw) if nout else ()
        trap = _STATUS[int(status)]
        return RunResult(tuple(pairs[0::2]), tuple(pairs[1::2]), int(cycles), trap is None,
                         trap, int(steps))


class WasmRunner:
    """Compiles each distinct image once (LRU cache) and runs it natively."""

    def __init__(self, cache_size: int = 256) -> None:
        self.engine = _engine()
        self.cache: OrderedDict[bytes, CompiledProgram] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()

    def compile(self, image: Image) -> CompiledProgram:
        key = image.to_bytes()
        with self.lock:
            program = self.cache.get(key)
            if program is not None:
                self.cache.move_to_end(key)
                return program
        program = CompiledProgram(self.engine, image)
        with self.lock:
            self.cache[key] = program
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return program

    def run(self, image: Image, inputs: Sequence[int] = (), *, fuel: int = DEFAULT_FUEL) -> RunResult:
        return self.compile(image).run(inputs, fuel)


_DEFAULT: WasmRunner | None = None


def run_fast(image: Image, inputs: Sequence[int] = (), *, fuel: int = DEFAULT_FUEL) -> RunResult:
    """Run a verified image on the shared native runner."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = WasmRunner()
    return _DEFAULT.run(image, inputs, fuel=fuel)
