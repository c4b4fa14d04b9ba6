"""The FLUX instruction set: one table that the assembler, verifier, interpreters,
WASM translator and docs/flux.md all read, so the published spec cannot drift from
the code.

A FLUX *image* is ``b"FLUX" | version:u8 | nparams:u8 | params:i64le* | code``. Jump
operands are absolute byte offsets into ``code``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"FLUX"
VERSION = 1
MAX_CODE_BYTES = 4096
MAX_PARAMS = 16
MEMORY_SLOTS = 16
MAX_STACK = 256
MAX_CALL_DEPTH = 64
DEFAULT_FUEL = 100_000
DECAY_SCALE = 1000  # DECAY multiplies by param/1000 (fixed point, per mille)

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
MASK64 = (1 << 64) - 1


def wrap64(value: int) -> int:
    """Two's-complement wrap: FLUX arithmetic never overflows, it wraps like the hardware."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


class Opcode(IntEnum):
    NOP = 0x00
    PUSH = 0x01
    POP = 0x02
    DUP = 0x03
    SWAP = 0x04
    OVER = 0x05
    ADD = 0x10
    SUB = 0x11
    MUL = 0x12
    DIV = 0x13
    MOD = 0x14
    NEG = 0x15
    INC = 0x16
    DEC = 0x17
    AND = 0x18
    OR = 0x19
    XOR = 0x1A
    NOT = 0x1B
    SHL = 0x1C
    SHR = 0x1D
    EQ = 0x20
    LT = 0x21
    GT = 0x22
    JMP = 0x30
    JZ = 0x31
    JNZ = 0x32
    CALL = 0x33
    RET = 0x34
    HALT = 0x35
    LOAD = 0x40
    STORE = 0x41
    SENSE = 0x42
    ACT = 0x43
    PARAM = 0x50
    DECAY = 0x51
    THRESH = 0x52
    INSTINCT = 0x53


class Operand(IntEnum):
    """Operand kinds; the value is the encoded size in bytes."""

    I32 = 4  # signed 32-bit little endian
    U16 = 2  # code offset (jump target), little endian
    U8 = 1  # slot, channel, input or parameter index


@dataclass(frozen=True)
class OpInfo:
    opcode: Opcode
    operands: tuple[Operand, ...]
    cycles: int
    pops: int
    pushes: int
    summary: str
    size: int  # encoded bytes: the opcode plus its operands


_I, _J, _B = (Operand.I32,), (Operand.U16,), (Operand.U8,)


def _op(code: Opcode, ops: tuple[Operand, ...], cycles: int, pops: int, pushes: int, summary: str) -> OpInfo:
    return OpInfo(code, ops, cycles, pops, pushes, summary, 1 + sum(int(o) for o in ops))


OPS: dict[Opcode, OpInfo] = {
    i.opcode: i
    for i in (
        _op(Opcode.NOP, (), 1, 0, 0, "do nothing"),
        _op(Opcode.PUSH, _I, 1, 0, 1, "push sign-extended n"),
        _op(Opcode.POP, (), 1, 1, 0, "drop the top"),
        _op(Opcode.DUP, (), 1, 1, 2, "a -> a a"),
        _op(Opcode.SWAP, (), 1, 2, 2, "a b -> b a"),
        _op(Opcode.OVER, (), 1, 2, 3, "a b -> a b a"),
        _op(Opcode.ADD, (), 1, 2, 1, "a b -> a+b (wrapping)"),
        _op(Opcode.SUB, (), 1, 2, 1, "a b -> a-b (wrapping)"),
        _op(Opcode.MUL, (), 3, 2, 1, "a b -> a*b (wrapping)"),
        _op(Opcode.DIV, (), 8, 2, 1, "a b -> a/b truncated; b=0 traps"),
        _op(Opcode.MOD, (), 8, 2, 1, "a b -> a rem b (sign of a); b=0 traps"),
        _op(Opcode.NEG, (), 1, 1, 1, "a -> -a (wrapping)"),
        _op(Opcode.INC, (), 1, 1, 1, "a -> a+1"),
        _op(Opcode.DEC, (), 1, 1, 1, "a -> a-1"),
        _op(Opcode.AND, (), 1, 2, 1, "bitwise and"),
        _op(Opcode.OR, (), 1, 2, 1, "bitwise or"),
        _op(Opcode.XOR, (), 1, 2, 1, "bitwise xor"),
        _op(Opcode.NOT, (), 1, 1, 1, "bitwise not"),
        _op(Opcode.SHL, (), 1, 2, 1, "a b -> a << (b & 63) (wrapping)"),
        _op(Opcode.SHR, (), 1, 2, 1, "a b -> a >> (b & 63) (arithmetic)"),
        _op(Opcode.EQ, (), 1, 2, 1, "a b -> 1 if a == b else 0"),
        _op(Opcode.LT, (), 1, 2, 1, "a b -> 1 if a < b else 0"),
        _op(Opcode.GT, (), 1, 2, 1, "a b -> 1 if a > b else 0"),
        _op(Opcode.JMP, _J, 2, 0, 0, "jump to l"),
        _op(Opcode.JZ, _J, 2, 1, 0, "pop; jump to l if zero"),
        _op(Opcode.JNZ, _J, 2, 1, 0, "pop; jump to l if not zero"),
        _op(Opcode.CALL, _J, 4, 0, 0, "push return address on the call stack; jump to l"),
        _op(Opcode.RET, (), 3, 0, 0, "return; with an empty call stack: halt"),
        _op(Opcode.HALT, (), 1, 0, 0, "stop; the run succeeded"),
        _op(Opcode.LOAD, _B, 2, 0, 1, "push memory slot n"),
        _op(Opcode.STORE, _B, 2, 1, 0, "pop into memory slot n"),
        _op(Opcode.SENSE, _B, 2, 0, 1, "push input n (0 if absent)"),
        _op(Opcode.ACT, _B, 2, 1, 0, "pop; emit on channel n"),
        _op(Opcode.PARAM, _B, 1, 0, 1, "push parameter p"),
        _op(Opcode.DECAY, (Operand.U8, Operand.U8), 3, 0, 0,
            "slot s *= param p / 1000 (truncated)"),
        _op(Opcode.THRESH, _B, 2, 1, 1, "a -> 1 if a >= param p else 0"),
        _op(Opcode.INSTINCT, _B, 2, 0, 0, "reflex: emit input n on channel n"),
    )
}

BY_NAME: dict[str, Opcode] = {op.name: op for op in Opcode}
_BY_BYTE: dict[int, Opcode] = {int(op): op for op in Opcode}
JUMPS = frozenset({Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL})
BRANCHES = frozenset({Opcode.JZ, Opcode.JNZ})
TERMINATORS = frozenset({Opcode.JMP, Opcode.RET, Opcode.HALT})
PARAM_OPERAND = {Opcode.PARAM: 0, Opcode.THRESH: 0, Opcode.DECAY: 1}
SLOT_OPERAND = {Opcode.LOAD: 0, Opcode.STORE: 0, Opcode.DECAY: 0}

_FORMATS = {Operand.I32: "<i", Operand.U16: "<H", Operand.U8: "<B"}
_RANGES = {
    Operand.I32: (-(1 << 31), (1 << 31) - 1),
    Operand.U16: (0, 0xFFFF),
    Operand.U8: (0, 0xFF),
}


def operand_range(kind: Operand) -> tuple[int, int]:
    return _RANGES[kind]


class DecodeError(ValueError):
    """Bytes that are not a FLUX instruction or image; `offset` says where."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Decoded:
    """One instruction at a byte offset, operands as plain ints (jumps are offsets)."""

    offset: int
    opcode: Opcode
    args: tuple[int, ...]

    @property
    def info(self) -> OpInfo:
        return OPS[self.opcode]

    @property
    def size(self) -> int:
        return OPS[self.opcode].size


def encode_instruction(opcode: Opcode, args: tuple[int, ...]) -> bytes:
    info = OPS[opcode]
    if len(args) != len(info.operands):
        raise ValueError(f"{opcode.name} takes {len(info.operands)} operand(s), got {len(args)}")
    out = bytearray([int(opcode)])
    for kind, value in zip(info.operands, args, strict=True):
        lo, hi = _RANGES[kind]
        if not lo <= value <= hi:
            raise ValueError(f"{opcode.name} operand {value} outside [{lo}, {hi}]")
        out += struct.pack(_FORMATS[kind], value)
    return bytes(out)


def decode_at(code: bytes, offset: int) -> Decoded:
    byte = code[offset]
    opcode = _BY_BYTE.get(byte)
    if opcode is None:
        raise DecodeError(f"unknown opcode 0x{byte:02x} at offset {offset}", offset)
    info = OPS[opcode]
    if offset + info.size > len(code):
        raise DecodeError(f"{opcode.name} at offset {offset} is missing operand bytes", offset)
    args: list[int] = []
    pos = offset + 1
    for kind in info.operands:
        (value,) = struct.unpack_from(_FORMATS[kind], code, pos)
        args.append(value)
        pos += int(kind)
    return Decoded(offset, opcode, tuple(args))


def decode_code(code: bytes) -> list[Decoded]:
    """Decode a whole code section; raises DecodeError at the first bad byte."""
    out: list[Decoded] = []
    offset = 0
    while offset < len(code):
        ins = decode_at(code, offset)
        out.append(ins)
        offset += ins.size
    return out


@dataclass(frozen=True)
class Image:
    """A FLUX program as stored: its parameter table and its code section."""

    code: bytes
    params: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        header = MAGIC + bytes([VERSION, len(self.params)])
        return header + b"".join(struct.pack("<q", p) for p in self.params) + self.code

    @classmethod
    def from_bytes(cls, data: bytes) -> Image:
        if data[:4] != MAGIC or len(data) < 6:
            raise DecodeError("not a FLUX image (missing the FLUX magic header)")
        if data[4] != VERSION:
            raise DecodeError(f"unsupported FLUX image version {data[4]}")
        count = data[5]
        if count > MAX_PARAMS:
            raise DecodeError(f"{count} parameters declared; at most {MAX_PARAMS} allowed")
        end = 6 + 8 * count
        if len(data) < end:
            raise DecodeError("truncated parameter table")
        params = struct.unpack_from(f"<{count}q", data, 6)
        return cls(code=bytes(data[end:]), params=tuple(params))

    def to_hex(self) -> str:
        return self.to_bytes().hex()
