"""FLUX assembly text <-> images.

Syntax (docs/flux.md): one instruction per line, ``label:`` definitions (alone or
before an instruction), ``;`` comments, case-insensitive mnemonics, operands
separated by commas or spaces, integers in decimal or ``0x`` hex, labels for jump
operands, parameter names for parameter operands, ``.param NAME VALUE`` directives.
Errors carry the 1-based line number so a user can fix the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ouroboros.capabilities.flux.isa import (
    BY_NAME,
    INT64_MAX,
    INT64_MIN,
    JUMPS,
    MAX_CODE_BYTES,
    MAX_PARAMS,
    OPS,
    PARAM_OPERAND,
    DecodeError,
    Image,
    Opcode,
    decode_at,
    encode_instruction,
    operand_range,
)

_IDENT = re.compile(r"^[A-Za-z_.$][A-Za-z0-9_.$]*$")
_LABEL = re.compile(r"^\s*([A-Za-z_.$][A-Za-z0-9_.$]*)\s*:(.*)$")
#: The integers docs/flux.md allows: ASCII decimal or 0x hex. Python's int() also reads
#: any Unicode digit ('\u09ea', a Bengali four, looks like an 8) and underscores, so the
#: source a reviewer reads could differ from the number assembled.
_INTEGER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)", re.ASCII)


class AssemblyError(ValueError):
    """An assembly mistake at a known line (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass
class _Pending:
    line: int
    opcode: Opcode | None  # None: a raw `.byte`
    tokens: list[str]
    offset: int


def _int(token: str) -> int | None:
    if _INTEGER.fullmatch(token) is None:
        return None
    try:
        return int(token, 0)
    except ValueError:
        return None


def assemble(text: str, *, max_bytes: int = MAX_CODE_BYTES) -> Image:
    """Assemble text into an image; raises AssemblyError naming the line."""
    labels: dict[str, int] = {}
    params: dict[str, int] = {}
    values: list[int] = []
    pending: list[_Pending] = []
    offset = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        while (match := _LABEL.match(line)) is not None:
            name = match.group(1)
            if name in labels:
                raise AssemblyError(number, f"label {name!r} defined twice")
            labels[name] = offset
            line = match.group(2).strip()
        if not line:
            continue
        tokens = line.replace(",", " ").split()
        if not tokens:
            raise AssemblyError(number, "a line of only separators (',')")
        head = tokens[0]
        if head.lower() == ".param":
            _param_directive(number, tokens, params, values)
            continue
        if head.lower() == ".byte":
            byte = _int(tokens[1]) if len(tokens) == 2 else None
            if byte is None or not 0 <= byte <= 0xFF:
                raise AssemblyError(number, ".byte needs one value in [0, 255]")
            pending.append(_Pending(number, None, tokens[1:], offset))
            offset += 1
            continue
        opcode = BY_NAME.get(head.upper())
        if opcode is None:
            raise AssemblyError(number, f"unknown mnemonic {head[:40]!r}"
                                        + ("..." if len(head) > 40 else ""))
        info = OPS[opcode]
        if len(tokens) - 1 < len(info.operands):
            raise AssemblyError(
                number, f"{opcode.name} is missing an operand (needs {len(info.operands)})"
            )
        if len(tokens) - 1 > len(info.operands):
            raise AssemblyError(number, f"{opcode.name} takes {len(info.operands)} operand(s)")
        pending.append(_Pending(number, opcode, tokens[1:], offset))
        offset += info.size
        if offset > max_bytes:
            raise AssemblyError(
                number, f"program exceeds the size bound of {max_bytes} bytes"
            )
    code = bytearray()
    for item in pending:
        if item.opcode is None:
            code.append(int(item.tokens[0], 0))
            continue
        args = tuple(
            _operand(item, index, token, labels, params)
            for index, token in enumerate(item.tokens)
        )
        try:
            code += encode_instruction(item.opcode, args)
        except ValueError as exc:
            raise AssemblyError(item.line, str(exc)) from exc
    return Image(code=bytes(code), params=tuple(values))


def _param_directive(
    number: int, tokens: list[str], params: dict[str, int], values: list[int]
) -> None:
    if len(tokens) != 3:
        raise AssemblyError(number, ".param needs a name and a value: .param NAME VALUE")
    name, value = tokens[1], _int(tokens[2])
    if not _IDENT.match(name) or _int(name) is not None:
        raise AssemblyError(number, f"bad parameter name {name!r}")
    if name in params:
        raise AssemblyError(number, f"parameter {name!r} defined twice")
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise AssemblyError(number, f"parameter value {tokens[2]!r} is not a 64-bit integer")
    if len(values) >= MAX_PARAMS:
        raise AssemblyError(number, f"at most {MAX_PARAMS} parameters")
    params[name] = len(values)
    values.append(value)


def _operand(
    item: _Pending, index: int, token: str, labels: dict[str, int], params: dict[str, int]
) -> int:
    assert item.opcode is not None
    value = _int(token)
    if value is not None:
        return value
    if item.opcode in JUMPS:
        if token not in labels:
            raise AssemblyError(item.line, f"undefined label {token!r}")
        return labels[token]
    if PARAM_OPERAND.get(item.opcode) == index:
        if token not in params:
            raise AssemblyError(item.line, f"undefined parameter {token!r}")
        return params[token]
    lo, hi = operand_range(OPS[item.opcode].operands[index])
    raise AssemblyError(item.line, f"{item.opcode.name} operand {token!r} must be an integer in [{lo}, {hi}]")


def disassemble(image: Image) -> str:
    """Canonical text: assembling it gives back the same image, byte for byte.

    Jump targets on instruction boundaries become ``L<offset>`` labels; anything the
    decoder cannot read (only in unverified images) is kept as ``.byte`` lines.
    """
    code = image.code
    starts: list[int] = []
    decoded = []
    offset = 0
    while offset < len(code):
        try:
            ins = decode_at(code, offset)
        except DecodeError:
            break
        decoded.append(ins)
        starts.append(offset)
        offset += ins.size
    tail = code[offset:]
    boundaries = set(starts)
    targets = {
        ins.args[0] for ins in decoded if ins.opcode in JUMPS and ins.args[0] in boundaries
    }
    lines = [f".param p{i} {value}" for i, value in enumerate(image.params)]
    for ins in decoded:
        if ins.offset in targets:
            lines.append(f"L{ins.offset}:")
        if ins.opcode in JUMPS and ins.args[0] in targets:
            operands = [f"L{ins.args[0]}"]
        else:
            operands = [str(a) for a in ins.args]
            if ins.opcode in PARAM_OPERAND and ins.args[PARAM_OPERAND[ins.opcode]] < len(image.params):
                operands[PARAM_OPERAND[ins.opcode]] = f"p{ins.args[PARAM_OPERAND[ins.opcode]]}"
        text = ins.opcode.name + (" " + ", ".join(operands) if operands else "")
        lines.append("    " + text)
    lines.extend(f"    .byte {b}" for b in tail)
    return "\n".join(lines) + "\n"
