"""The one canonical form (RFC 8785, JCS) and the one content hash.

``rfc8785`` is the reference implementation, but it is pure Python. For the common case
(ASCII keys, integers within ±2^53, non-integral floats in the range where Python and
ECMAScript print the same digits) the JCS bytes are exactly what ``orjson`` produces with
sorted keys: compact, raw UTF-8, control characters escaped as JCS escapes them. That
path is taken after a cheap structural check and is about 15x faster than the stdlib
encoder; anything else goes to ``rfc8785``. Property tests keep the two byte-identical.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

from ouroboros.kernel.errors import InvalidPatch

#: Hash of the empty byte string: no canonical JSON document is empty, so this names an
#: absent target unambiguously (a JSON ``null`` value is not the same as no value).
ABSENT = "sha256:" + hashlib.sha256(b"").hexdigest()

_SAFE_INT = 2**53 - 1
#: ECMAScript (so RFC 8785) writes a double below 1e21 without an exponent: from 2^53 on,
#: an integer literal that every JSON reader reads back as an integer outside ±2^53-1.
_INTEGER_FORM = 1e21
_SORTED = orjson.OPT_SORT_KEYS


def _fast_path_ok(value: Any) -> bool:
    """Whether orjson's sorted output is the JCS form of ``value``. One pass over the
    containers; scalars inside a container are judged where they are met (the common
    case: a dict of strings and small ints) instead of going through the stack."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            items: Any = v.values()
            for k in v:
                if type(k) is not str or not k.isascii():
                    return False  # JCS sorts by UTF-16 units; Python by code points
        elif t is list:
            items = v
        else:
            items = (v,)
        for item in items:
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if ti is int:
                if -_SAFE_INT <= item <= _SAFE_INT:
                    continue
                return False
            if ti is dict or ti is list:
                push(item)
                continue
            if ti is float:
                # orjson (like Python's repr) and ECMAScript's Number#toString agree on the
                # shortest digits; they differ only for integral values ("1.0" vs "1")
                # and in where they switch to exponent notation.
                if item.is_integer() or not 1e-4 <= abs(item) < 1e16:
                    return False
                continue
            return False  # tuples, subclasses and the rest: let the reference decide
    return True


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; non-JSON values (NaN, huge ints, bytes) are refused."""
    if _fast_path_ok(value):
        try:
            return orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:
            pass  # lone surrogates, deep nesting: the reference raises the right error
    try:
        out = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as e:
        raise InvalidPatch(f"value is not canonical JSON: {e}") from e
    unsafe = _unsafe_double(value)
    if unsafe is not None:
        # 1e17 would be stored as 100000000000000000, which no replay could hash again.
        raise InvalidPatch(f"value is not canonical JSON: the number {unsafe!r} is written "
                           "as an integer outside ±2^53-1", "store it as a string")
    return out


def _unsafe_double(value: Any) -> float | None:
    """The first double in ``value`` whose canonical form reads back as an unsafe integer."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if _SAFE_INT < abs(item) < _INTEGER_FORM:
                return item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def same_value(a: Any, b: Any) -> bool:
    """Equality of JSON values as the ledger sees them (``True`` is not ``1``). Identical
    orjson bytes mean identical values, so the structural JCS check runs only when they
    differ (``1`` and ``1.0`` print differently there but are one JCS number)."""
    if a is None or b is None:
        return a is b
    try:
        if orjson.dumps(a, option=_SORTED) == orjson.dumps(b, option=_SORTED):
            return True
    except orjson.JSONEncodeError:
        pass
    return canonical_bytes(a) == canonical_bytes(b)


def hash_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_hash(value: Any) -> str:
    """``sha256:<hex>`` of the canonical bytes; ``None`` (absent) hashes to ``ABSENT``."""
    if value is None:
        return ABSENT
    return hash_bytes(canonical_bytes(value))
