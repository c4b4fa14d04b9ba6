"""Strict JSON for values that come from outside (files, options, request bodies).

The standard library's ``json.loads`` accepts documents the ledger cannot hold or that
crash later, far from the input: ``NaN`` and ``Infinity``, integers of any length
(5,000 digits raise a bare ``ValueError``), nesting deep enough to exhaust the stack, lone
surrogates, and duplicate keys (the last one silently wins, so what a reviewer read is not
what is stored). ``loads_strict`` refuses each of them with a ``UsageError`` that names
the problem and where it is, so every interface answers bad input the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ouroboros.kernel.errors import UsageError

#: Deeper documents are refused: no value Ouroboros stores needs more, and recursive
#: consumers (canonical form, schema checks, audit) stay far from the stack limit.
MAX_DEPTH = 64
#: JSON numbers are IEEE doubles in the canonical form (RFC 8785): integers beyond
#: ±(2^53 - 1) would not survive a round trip.
MAX_SAFE_INT = 2**53 - 1
#: RFC 8785 writes a double below 1e21 without an exponent, so from 2^53 on as an integer
#: literal outside that range: 1e17 would be stored as 100000000000000000 (as in
#: kernel/canonical.py, not imported here: `ouro --help` stays free of orjson).
_INTEGER_FORM = 1e21


class _Refused(ValueError):
    """Raised from inside the decoder's hooks; turned into a UsageError with a position."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 16 or abs(int(text)) > MAX_SAFE_INT:
        shown = text if len(text) <= 24 else f"{text[:12]}…({len(digits)} digits)"
        raise _Refused(f"integer {shown} is outside ±2^53-1, the range JSON numbers keep "
                       "exactly")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:24]} overflows a double")
    if _unsafe_float(value):
        raise _Refused(f"number {text[:24]} is an integer outside ±2^53-1, the range JSON "
                       "numbers keep exactly")
    return value


def _unsafe_float(value: float) -> bool:
    return MAX_SAFE_INT < abs(value) < _INTEGER_FORM


def _check_structure(value: Any, what: str) -> None:
    """Depth and lone surrogates, iteratively (the value may be hostile)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise UsageError(f"{what} is nested more than {MAX_DEPTH} levels deep",
                                 "flatten the value")
            if isinstance(item, dict):
                for k, v in item.items():
                    _check_text(k, what)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        for ch in text:
            if "\ud800" <= ch <= "\udfff":
                raise UsageError(f"{what} contains a lone surrogate (\\u{ord(ch):04x}), "
                                 "which is not Unicode text")


def loads_strict(text: str | bytes, what: str = "the JSON input") -> Any:
    """Parse one JSON document or raise ``UsageError`` saying what is wrong and where.

    Args:
        text: the document; bytes must be UTF-8 (a leading BOM is ignored).
        what: how to name the input in messages ("value file p.json", "--input").
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{what} is not UTF-8 text (bad byte at offset {e.start})",
                             "save it as UTF-8") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise UsageError(f"{what} is empty", "give a JSON document, e.g. {} or \"text\"")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                           parse_int=_int, parse_float=_float)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON: line {e.lineno} column {e.colno}: "
                         f"{e.msg}") from None
    except _Refused as e:
        raise UsageError(f"{what} is refused: {e}") from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply", "flatten the value") from None
    _check_structure(value, what)
    return value


def check_parsed(value: Any, what: str = "the JSON input") -> Any:
    """The checks of `loads_strict` for a value another parser already decoded (an MCP
    request's arguments): depth, lone surrogates, integers outside ±2^53-1, non-finite
    numbers. Returns the value.

    Raises:
        UsageError: naming the first problem.
    """
    _check_structure(value, what)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if abs(item) > MAX_SAFE_INT:
                raise UsageError(f"{what} holds an integer outside ±2^53-1, the range JSON "
                                 "numbers keep exactly")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UsageError(f"{what} holds {item}, which is not a JSON number")
            if _unsafe_float(item):
                raise UsageError(f"{what} holds {item!r}, an integer outside ±2^53-1, the "
                                 "range JSON numbers keep exactly")
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            raise UsageError(f"{what} holds a {type(item).__name__}, which is not JSON")
    return value
