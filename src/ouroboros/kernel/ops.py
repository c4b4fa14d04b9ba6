"""Applying an op and computing its exact inverse: pure functions on JSON values.

``None`` stands for an absent target. Every inverse is checked by applying it: if a
compact inverse (JSON Patch, diff) does not restore the old value byte for byte, the
full old value is used instead, so rollback is always exact.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from ouroboros.kernel.canonical import same_value
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.textdiff import apply_diff, make_diff

JSON = Any


def json_copy(value: JSON) -> JSON:
    """A deep copy of a JSON value: dicts and lists are rebuilt, the immutable scalars are
    shared. Several times faster than ``copy.deepcopy``, which keeps a memo for cycles and
    shared references that JSON values cannot have; anything else still goes through it."""
    t = type(value)
    if t is dict:  # scalar members are shared where they are met: no call per leaf
        return {k: v if type(v) in _SCALARS else json_copy(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _SCALARS else json_copy(v) for v in value]
    if t in _SCALARS:
        return value
    return copy.deepcopy(value)


#: The immutable JSON scalars (exact types: a subclass may carry mutable state).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def apply_op(op: dict[str, Any], old: JSON) -> JSON:
    kind = op["kind"]
    if kind == "value":
        return json_copy(op["value"])
    if kind == "delete":
        if old is None:
            raise InvalidPatch("cannot delete a target that does not exist")
        return None
    if kind == "json_patch":
        if not isinstance(old, dict | list):
            raise InvalidPatch("a JSON Patch needs an existing JSON object or array target")
        try:
            return jsonpatch.apply_patch(old, op["ops"], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
                KeyError, IndexError, ValueError) as e:
            raise InvalidPatch(f"JSON Patch does not apply: {e}") from e
    if kind == "diff":
        if old is not None and not isinstance(old, str):
            raise InvalidPatch("a unified diff needs a text target")
        return apply_diff(old or "", op["diff"])
    raise InvalidPatch(f"unknown op kind {kind!r}")


def inverse_of(op: dict[str, Any], old: JSON, new: JSON) -> dict[str, Any]:
    """The op that turns ``new`` back into ``old`` exactly."""
    if old is None:
        return {"kind": "delete"}
    full: dict[str, Any] = {"kind": "value", "value": json_copy(old)}
    candidate: dict[str, Any] | None = None
    if op["kind"] == "json_patch" and isinstance(new, dict | list):
        candidate = {"kind": "json_patch", "ops": jsonpatch.make_patch(new, old).patch}
    elif op["kind"] == "diff" and isinstance(old, str) and isinstance(new, str):
        candidate = {"kind": "diff", "diff": make_diff(new, old)}
    if candidate is not None:
        try:
            if same_value(apply_op(candidate, new), old):
                return candidate
        except InvalidPatch:
            pass
    return full
