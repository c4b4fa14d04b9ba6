"""The patch-type registry: core types, extension types and named tests.

Capabilities add their types (``skill``, ``bytecode``, ``file``) and tests here through the
same registry the core types use; the kernel never imports a capability.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from ouroboros.kernel.canonical import canonical_bytes, same_value
from ouroboros.kernel.clock import iso
from ouroboros.kernel.errors import InvalidPatch, UsageError
from ouroboros.kernel.once import once
from ouroboros.kernel.ops import apply_op
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.trust import expired, policy_problems

JSON = Any


@dataclass(frozen=True)
class TestContext:
    """What a test sees: the patch, the target's value before and after, and the state."""

    __test__ = False  # not a pytest class

    patch: Patch
    old_value: JSON
    new_value: JSON
    inverse: dict[str, Any]
    state: Mapping[str, JSON]
    schema: dict[str, Any] | None = None
    #: The kernel's clock at submission; ``None`` outside a submit and for a rollback,
    #: which restores a value that held before (so no "must be live now" check applies).
    now: datetime | None = None

    @once
    def old_bytes(self) -> bytes | None:
        """Canonical bytes of the old value (``None`` when absent), computed once."""
        return None if self.old_value is None else canonical_bytes(self.old_value)

    @once
    def new_bytes(self) -> bytes | None:
        return None if self.new_value is None else canonical_bytes(self.new_value)


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False
    ok: bool
    detail: str = ""


TestFn = Callable[[TestContext], TestOutcome]
AuditFn = Callable[[TestContext], list[str]]
EffectFn = Callable[[Patch, JSON], None]


@dataclass(frozen=True)
class PatchType:
    """A kind of change: the schema of its values, its default tests, optional extra audit
    rules and an optional side effect run after the patch is durably in the ledger."""

    name: str
    value_schema: dict[str, Any]
    default_tests: tuple[str, ...] = ("schema", "roundtrip", "replay")
    audit: AuditFn | None = None
    effect: EffectFn | None = None
    targets: tuple[str, ...] = ("*",)
    root_only: bool = False
    description: str = ""
    #: The type whose values this one holds too (``skill_review`` holds ``skill``
    #: versions): a target set by one may take the other. Empty: its own name.
    kind: str = ""

    @property
    def family(self) -> str:
        return self.kind or self.name

    def allows_target(self, target: str) -> bool:
        if self.targets == ("*",):  # most types: any target (the patch model checked it)
            return True
        return any(fnmatch.fnmatchcase(target, g) for g in self.targets)


TRUST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["keys", "root", "delegations"],
    "additionalProperties": False,
    "properties": {
        "keys": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["public"],
            "properties": {"public": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "name": {"type": "string"}}}},
        "root": {"type": "object", "required": ["keys", "threshold"], "additionalProperties": False,
                 "properties": {"keys": {"type": "array", "items": {"type": "string"},
                                         "minItems": 1, "uniqueItems": True},
                                "threshold": {"type": "integer", "minimum": 1}}},
        "delegations": {"type": "array", "items": {
            "type": "object", "required": ["name", "keys", "types", "targets", "threshold"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"},
                           "keys": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                           "types": {"type": "array", "items": {"type": "string"}},
                           "targets": {"type": "array", "items": {"type": "string"}},
                           "threshold": {"type": "integer", "minimum": 1},
                           "rights": {"type": "array", "items": {"enum": ["grant", "approve"]}},
                           "expires": {"type": "string"}}}},
        "revoked": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["public", "at"],
            "properties": {"public": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "name": {"type": "string"}, "at": {"type": "string"},
                           "reason": {"type": "string"}}}},
    },
}

GATES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["approval", "audit", "breaker"],
    "properties": {
        "approval": {"type": "array", "items": {
            "type": "object", "required": ["types", "targets"],
            "properties": {"types": {"type": "array", "items": {"type": "string"}},
                           "targets": {"type": "array", "items": {"type": "string"}},
                           "approvals": {"type": "integer", "minimum": 1},
                           "self_approval": {"type": "boolean"}}}},
        "audit": {"type": "object", "required": [
            "forbidden_targets", "url_allowlist", "injection_markers",
            "max_value_bytes", "max_reasoning_bytes"]},
        "breaker": {"type": "object", "required": ["threshold", "cooldown_hours"],
                    "properties": {"threshold": {"type": "integer", "minimum": 1},
                                   "cooldown_hours": {"type": "number", "minimum": 0}}},
    },
}

CORE_TYPES: tuple[PatchType, ...] = (
    PatchType("prompt", {"type": "string", "maxLength": 200_000},
              description="an agent's prompt text"),
    PatchType("policy", {"type": "object"}, description="a decision policy"),
    PatchType("routing", {"type": "object", "additionalProperties": {"type": ["number", "object"]}},
              description="routing heuristics and weights"),
    PatchType("config", {"type": "object"}, description="configuration parameters"),
    PatchType("tools", {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
              description="the tool set attached to an agent"),
    PatchType("trust", TRUST_SCHEMA, targets=("kernel/trust",), root_only=True,
              default_tests=("schema", "roundtrip", "replay", "trust.keys"),
              description="the trust policy (root threshold only)"),
    PatchType("gates", GATES_SCHEMA, targets=("kernel/gates",), root_only=True,
              description="the gate configuration (root threshold only)"),
    PatchType("schemas", {"type": "object", "additionalProperties": {"type": "object"}},
              targets=("kernel/schemas",), root_only=True,
              description="JSON Schemas registered for target globs"),
)


@lru_cache(maxsize=256)
def _validator_for_bytes(schema_bytes: bytes) -> Any:
    """``jsonschema`` checks the schema against its metaschema (its messages name the bad
    keyword); values are validated by ``jsonschema-rs``, the same drafts compiled in Rust,
    about 50x faster per value, which matters because every submit validates one."""
    import json

    import jsonschema  # only to check a schema once: it costs more to import than the rest
    import jsonschema_rs

    schema = json.loads(schema_bytes)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return jsonschema_rs.validator_for(schema, validate_formats=False, offline=True)


#: Schemas come from long-lived objects (a type's schema, a state value), so most lookups
#: hit by identity; the cache keeps the object alive, so an id is never reused meanwhile.
_by_identity: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    hit = _by_identity.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    validator = _validator_for_bytes(canonical_bytes(schema))
    if len(_by_identity) > 1024:
        _by_identity.clear()
    _by_identity[id(schema)] = (schema, validator)
    return validator


def schema_errors(schema: dict[str, Any], value: JSON) -> list[str]:
    validator = _validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.instance_path])
    return [f"{'/'.join(str(p) for p in e.instance_path) or '(root)'}: {e.message}"
            for e in errors]


def _test_schema(ctx: TestContext) -> TestOutcome:
    if ctx.new_value is None or ctx.schema is None:
        return TestOutcome(True, "nothing to validate")
    if _validator(ctx.schema).is_valid(ctx.new_value):
        return TestOutcome(True)
    errors = schema_errors(ctx.schema, ctx.new_value)
    return TestOutcome(not errors, "; ".join(errors[:3]))


# apply_op never mutates its input (values are copied, JSON Patch runs out of place), so
# the tests need not copy what they pass it.
def _test_trust_keys(ctx: TestContext) -> TestOutcome:
    """Key ids are the SHA-256 of their public keys, every referenced key is listed, and
    every threshold can be met (the schema cannot say any of this)."""
    if not isinstance(ctx.new_value, dict) or not _validator(TRUST_SCHEMA).is_valid(ctx.new_value):
        return TestOutcome(False, "not a trust policy")
    problems = policy_problems(ctx.new_value)
    # Whatever drops a key from `revoked` (a rollback past the revocation, a policy made
    # by hand) would trust a stolen key again without anyone asking for it.
    old_revoked = ctx.old_value.get("revoked", {}) if isinstance(ctx.old_value, dict) else {}
    new_revoked = ctx.new_value.get("revoked", {})
    problems += [f"key {r.get('name', kid[:12])} was revoked at {r.get('at', '?')}; a revoked "
                 "key stays revoked (give its holder a new key)"
                 for kid, r in old_revoked.items() if kid not in new_revoked]
    if ctx.now is not None and not problems:  # (expiry times are well-formed then)
        # `trust grant` refuses a past expiry, but a hand-built trust patch would store a
        # delegation that never works and that `trust show` lists as if it did. One that
        # expired while in force is history: later patches carry it on, narrow it (a
        # revocation takes a key out of it) or drop it; only a new delegation or a new
        # expiry must be live.
        old = {d["name"]: d.get("expires") for d in ctx.old_value.get("delegations", [])
               } if isinstance(ctx.old_value, dict) else {}
        problems += [f"delegation {d['name']!r} expires at {d['expires']}, not after now "
                     f"({iso(ctx.now)}); a delegation that expires before it is granted "
                     "never works" for d in ctx.new_value["delegations"]
                     if expired(d, ctx.now) and (d["name"] not in old
                                                 or old[d["name"]] != d["expires"])]
    return TestOutcome(not problems, "; ".join(problems[:3]))


def _test_roundtrip(ctx: TestContext) -> TestOutcome:
    try:
        restored = apply_op(ctx.inverse, ctx.new_value)
    except InvalidPatch as e:
        return TestOutcome(False, f"inverse does not apply: {e}")
    ok = (restored is None) if ctx.old_value is None else same_value(restored, ctx.old_value)
    return TestOutcome(ok, "inverse did not restore the old value")


def _test_replay(ctx: TestContext) -> TestOutcome:
    first = apply_op(ctx.patch.op, ctx.old_value)
    second = apply_op(ctx.patch.op, ctx.old_value)
    if first is None or second is None or ctx.new_value is None:
        ok = first is second is ctx.new_value
    else:
        ok = same_value(first, second) and same_value(first, ctx.new_value)
    return TestOutcome(ok, "applying the patch twice to a copy gave different values")


@dataclass
class TypeRegistry:
    types: dict[str, PatchType] = field(default_factory=dict)
    tests: dict[str, TestFn] = field(default_factory=dict)

    @classmethod
    def with_core(cls) -> TypeRegistry:
        reg = cls()
        for t in CORE_TYPES:
            reg.register_type(t)
        reg.register_test("schema", _test_schema)
        reg.register_test("roundtrip", _test_roundtrip)
        reg.register_test("replay", _test_replay)
        reg.register_test("trust.keys", _test_trust_keys)
        return reg

    def register_type(self, patch_type: PatchType) -> None:
        """Register (or re-register, e.g. on a second Runtime in one process) a type."""
        existing = self.types.get(patch_type.name)
        if existing is not None and existing.root_only and not patch_type.root_only:
            raise UsageError(f"cannot weaken the root-only type {patch_type.name!r}")
        self.types[patch_type.name] = patch_type

    def register_test(self, name: str, fn: TestFn) -> None:
        self.tests[name] = fn

    def get(self, name: str) -> PatchType | None:
        return self.types.get(name)
