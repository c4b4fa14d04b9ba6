"""The patch model: a change to one target, as data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ouroboros.kernel.canonical import canonical_bytes, hash_bytes
from ouroboros.kernel.clock import parse_iso
from ouroboros.kernel.errors import InvalidPatch

FIELDS = ("type", "target", "base", "op", "reasoning", "test_requirements", "author", "created",
          "ledger")
OPTIONAL = ("expires",)
OP_KINDS = ("value", "json_patch", "diff", "delete")
# ``\Z``, not ``$`` (which also matches before a final newline: ``agents/a/prompt\n`` was
# a target of its own that looked like ``agents/a/prompt`` and escaped its approval rule).
_TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,199}\Z")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}\Z")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")


def _valid_time(text: str) -> bool:
    try:
        parse_iso(text)
    except ValueError:
        return False
    return True


_REQUIRED = frozenset(FIELDS)
_ALLOWED = frozenset(FIELDS + OPTIONAL)
_STRINGS = ("type", "target", "base", "reasoning", "author", "created", "ledger")
_OP_FIELDS = {"value": {"kind", "value"}, "json_patch": {"kind", "ops"},
              "diff": {"kind", "diff"}, "delete": {"kind"}}


def _check_op(op: Any) -> dict[str, Any]:
    if not isinstance(op, dict) or op.get("kind") not in OP_KINDS:
        raise InvalidPatch(f"op must be an object whose kind is one of {', '.join(OP_KINDS)}")
    kind = op["kind"]
    expected = _OP_FIELDS[kind]
    if op.keys() != expected:
        raise InvalidPatch(f"a {kind} op has exactly the fields {', '.join(sorted(expected))}")
    if kind == "value" and op["value"] is None:
        raise InvalidPatch("a value op cannot set null; use a delete op to remove a target")
    if kind == "json_patch" and not (isinstance(op["ops"], list)
                                     and all(isinstance(o, dict) for o in op["ops"])):
        raise InvalidPatch("a json_patch op holds an RFC 6902 list of operations")
    if kind == "diff" and not isinstance(op["diff"], str):
        raise InvalidPatch("a diff op holds a unified diff as a string")
    return op


@dataclass(frozen=True)
class Patch:
    """``{type, target, base, op, reasoning, test_requirements, author, created, ledger
    [, expires]}``.

    ``base`` is the content hash of the target's value the patch was made against;
    ``op`` is data (a value, a JSON Patch, a unified diff or a delete), never code.
    ``ledger`` binds the signed patch to one ledger (its genesis hash), so an envelope
    signed for one workspace is refused by every other; ``expires`` (optional, UTC
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``) bounds how long a signed patch may be submitted.
    """

    type: str
    target: str
    base: str
    op: dict[str, Any]
    reasoning: str
    test_requirements: tuple[str, ...]
    author: str
    created: str
    ledger: str
    expires: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Patch:
        """Validate every field on the way in; anything malformed is ``InvalidPatch``."""
        if not isinstance(data, dict):
            raise InvalidPatch("a patch is a JSON object")
        keys = data.keys()
        if not keys >= _REQUIRED:
            raise InvalidPatch(f"patch is missing {', '.join(f for f in FIELDS if f not in data)}")
        if not keys <= _ALLOWED:
            raise InvalidPatch(f"patch has unknown fields {', '.join(sorted(keys - _ALLOWED))}")
        for name in _STRINGS:
            if not isinstance(data[name], str):
                raise InvalidPatch(f"patch field {name!r} must be a string")
        if not _HASH.match(data["ledger"]):
            raise InvalidPatch("patch ledger must be the sha256:<64 hex> genesis hash of the "
                               "ledger it is meant for")
        expires = data.get("expires")
        if "expires" in data and not (isinstance(expires, str) and _TIME.match(expires)
                                      and _valid_time(expires)):
            raise InvalidPatch("patch expires must be a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ")
        if not _NAME.match(data["type"]):
            raise InvalidPatch(f"patch type {data['type']!r} is not a valid name")
        if not _TARGET.match(data["target"]) or ".." in data["target"]:
            raise InvalidPatch(f"patch target {data['target']!r} is not a valid target name",
                               "use letters, digits and . _ - / : @, without '..'")
        if not _HASH.match(data["base"]):
            raise InvalidPatch("patch base must be a sha256:<64 hex> content hash")
        if not _NAME.match(data["author"]):
            raise InvalidPatch(f"patch author {data['author']!r} is not a valid name")
        tests = data["test_requirements"]
        if not isinstance(tests, list) or not all(isinstance(t, str) and _NAME.match(t)
                                                  for t in tests):
            raise InvalidPatch("test_requirements must be a list of test names")
        return cls(type=data["type"], target=data["target"], base=data["base"],
                   op=_check_op(data["op"]), reasoning=data["reasoning"],
                   test_requirements=tuple(tests), author=data["author"],
                   created=data["created"], ledger=data["ledger"], expires=expires)

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type, "target": self.target, "base": self.base, "op": self.op,
                "reasoning": self.reasoning, "test_requirements": list(self.test_requirements),
                "author": self.author, "created": self.created, "ledger": self.ledger}
        if self.expires is not None:  # absent, not null: one canonical form per patch
            data["expires"] = self.expires
        return data

    def canonical(self) -> bytes:
        return canonical_bytes(self.to_dict())

    @property
    def hash(self) -> str:
        return hash_bytes(self.canonical())
