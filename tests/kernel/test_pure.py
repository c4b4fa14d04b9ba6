"""Pure parts: canonical form, diffs, ops and inverses, patch parsing, Merkle trees."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.kernel.canonical import ABSENT, canonical_bytes, content_hash
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.merkle import MerkleAccumulator, merkle_root
from ouroboros.kernel.ops import apply_op, inverse_of
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.textdiff import apply_diff, make_diff

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
json_docs = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
texts = st.lists(st.sampled_from(["a", "b", "c\n", "\n", "def\n", "", "x y\n", "\r\n"]),
                 max_size=30).map("".join)


@given(json_values)
def test_canonical_form_is_stable(value: Any) -> None:
    once = canonical_bytes(value)
    assert canonical_bytes(json.loads(once)) == once


def test_canonical_form_sorts_keys_and_strips_space() -> None:
    assert canonical_bytes({"b": 1, "a": [1.0, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_content_hash_format_and_absent() -> None:
    h = content_hash({"a": 1})
    assert h.startswith("sha256:") and len(h) == 71
    assert content_hash(None) == ABSENT != content_hash("")


def test_non_json_values_are_refused() -> None:
    with pytest.raises(InvalidPatch, match="not canonical JSON"):
        canonical_bytes({"x": float("nan")})


@given(texts, texts)
def test_diff_round_trips_any_text(old: str, new: str) -> None:
    assert apply_diff(old, make_diff(old, new)) == new


def test_diff_against_other_text_is_rejected_with_the_line() -> None:
    diff = make_diff("one\ntwo\nthree\n", "one\n2\nthree\n")
    with pytest.raises(InvalidPatch, match="does not apply at target line"):
        apply_diff("one\nTWO\nthree\n", diff)


@given(json_docs, json_docs)
def test_json_patch_inverse_after_apply_is_identity(old: dict[str, Any], new: dict[str, Any]) -> None:
    import jsonpatch

    op = {"kind": "json_patch", "ops": jsonpatch.make_patch(old, new).patch}
    result = apply_op(op, old)
    assert canonical_bytes(result) == canonical_bytes(new)
    inverse = inverse_of(op, old, result)
    assert canonical_bytes(apply_op(inverse, result)) == canonical_bytes(old)


@given(texts, texts)
def test_diff_inverse_after_apply_is_identity(old: str, new: str) -> None:
    op = {"kind": "diff", "diff": make_diff(old, new)}
    result = apply_op(op, old)
    assert apply_op(inverse_of(op, old, result), result) == old


@given(st.one_of(st.none(), json_docs), json_docs)
def test_value_inverse_after_apply_is_identity(old: Any, new: Any) -> None:
    op = {"kind": "value", "value": new}
    result = apply_op(op, old)
    restored = apply_op(inverse_of(op, old, result), result)
    assert (restored is None) if old is None else canonical_bytes(restored) == canonical_bytes(old)


def test_delete_of_absent_target_is_refused() -> None:
    with pytest.raises(InvalidPatch, match="does not exist"):
        apply_op({"kind": "delete"}, None)


def _patch(**kw: Any) -> dict[str, Any]:
    base = {"type": "prompt", "target": "agents/a/prompt", "base": ABSENT,
            "op": {"kind": "value", "value": "hi"}, "reasoning": "r", "test_requirements": [],
            "author": "alice", "created": "2026-01-01T00:00:00.000000Z",
            "ledger": "sha256:" + "ab" * 32}
    base.update(kw)
    return base


@pytest.mark.parametrize("change, message", [
    ({"target": "../etc"}, "not a valid target"),
    ({"base": "md5:1"}, "base must be"),
    ({"op": {"kind": "exec", "code": "rm"}}, "op must be"),
    ({"op": {"kind": "value", "value": None}}, "cannot set null"),
    ({"test_requirements": "schema"}, "list of test names"),
    ({"extra": 1}, "unknown fields extra"),
    ({"ledger": "workspace-a"}, "genesis hash of the ledger"),
    ({"expires": "tomorrow"}, "expires must be a UTC time"),
    ({"expires": "2026-13-01T00:00:00.000000Z"}, "expires must be a UTC time"),
    ({"expires": None}, "expires must be a UTC time"),
])
def test_patch_parsing_names_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPatch, match=message):
        Patch.from_dict(_patch(**change))


def test_patch_missing_fields_are_listed() -> None:
    data = _patch()
    del data["author"], data["op"]
    with pytest.raises(InvalidPatch, match="missing op, author"):
        Patch.from_dict(data)


@given(st.one_of(json_values, st.dictionaries(st.sampled_from(
    ["type", "target", "base", "op", "reasoning", "test_requirements", "author", "created",
     "ledger", "expires"]),
    json_values)))
@settings(max_examples=300)
def test_patch_parsing_never_crashes(data: Any) -> None:
    with contextlib.suppress(InvalidPatch):
        Patch.from_dict(data)


def test_patch_hash_is_hash_of_canonical_bytes() -> None:
    p = Patch.from_dict(_patch())
    assert p.hash == content_hash(p.to_dict())
    assert "expires" not in p.to_dict()  # absent, never null: one canonical form
    timed = Patch.from_dict(_patch(expires="2026-02-01T00:00:00.000000Z"))
    assert timed.to_dict()["expires"] == "2026-02-01T00:00:00.000000Z" and timed.hash != p.hash


@pytest.mark.parametrize("n", [*range(0, 20), 31, 32, 33, 100])
def test_merkle_accumulator_matches_rfc6962_reference(n: int) -> None:
    leaves = [bytes([i % 256]) * (i % 5 + 1) for i in range(n)]
    acc = MerkleAccumulator()
    for leaf in leaves:
        acc.append(leaf)
    assert acc.root() == merkle_root(leaves)
    assert MerkleAccumulator.from_dict(acc.to_dict()).root() == acc.root()


def test_merkle_rfc6962_known_vector() -> None:
    # RFC 6962 test vector (certificate-transparency-go merkle tests): empty tree and leaf "".
    assert merkle_root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([b""]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
# from 2^53 to 1e21 a double is written as an integer outside ±2^53-1: refused
jcs_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not 2**53 <= abs(f) < 1e21)
jcs_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | any_text
    | jcs_floats,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(any_text, kids, max_size=4),
    max_leaves=15)


@given(jcs_values)
@settings(max_examples=400)
def test_fast_canonical_path_is_byte_identical_to_rfc8785(value: Any) -> None:
    import rfc8785

    assert canonical_bytes(value) == rfc8785.dumps(value)


in_range_floats = st.floats(min_value=1e-4, max_value=2**53, exclude_max=True) | st.floats(
    min_value=-(2**53), max_value=-1e-4, exclude_min=True)


@given(st.lists(in_range_floats | st.integers(-(2**53) + 1, 2**53 - 1), max_size=8))
@settings(max_examples=1000)
def test_fast_path_numbers_print_as_ecmascript_does(values: list[Any]) -> None:
    import rfc8785

    # The numbers orjson prints on the fast path, checked where they are most dense.
    assert canonical_bytes(values) == rfc8785.dumps(values)


def test_control_characters_are_escaped_as_jcs_does() -> None:
    import rfc8785

    value = {"k": "".join(chr(c) for c in range(0, 0x30)) + "\u2028\u007f é 😀"}
    assert canonical_bytes(value) == rfc8785.dumps(value)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 json_values.map(json.dumps),
                 st.fixed_dictionaries({"payload": st.text(max_size=20),
                                        "payloadType": st.text(max_size=5),
                                        "signatures": st.lists(json_values, max_size=3)}
                                       ).map(json.dumps)))
@settings(max_examples=300)
def test_envelope_parsing_never_crashes(text: str | bytes) -> None:
    from ouroboros.kernel.dsse import envelope_from_json

    with contextlib.suppress(InvalidPatch):
        envelope_from_json(text)


schema_probe_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | jcs_floats | st.sampled_from(["a" * 64, "x", ""]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["keys", "root", "delegations", "threshold", "public", "name", "types",
                         "targets", "rights", "approval", "audit", "breaker", "w", "b"]),
        kids, max_size=5),
    max_leaves=20)
EXTRA_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "required": ["temperature"],
     "properties": {"temperature": {"type": "number", "minimum": 0, "maximum": 2}}},
    {"type": "string", "pattern": "^[a-z]+\\d*$", "format": "email", "maxLength": 8},
    {"type": "array", "items": {"type": "integer"}, "uniqueItems": True, "minItems": 1},
]


@given(schema_probe_values)
@settings(max_examples=400, deadline=None)  # the first example imports jsonschema
def test_jsonschema_rs_agrees_with_jsonschema_on_the_kernel_schemas(value: Any) -> None:
    """Values are validated by jsonschema-rs; the Python reference must agree on every
    schema the kernel ships (and a few typical registered ones)."""
    import jsonschema

    from ouroboros.kernel.types import CORE_TYPES, _validator

    for schema in [t.value_schema for t in CORE_TYPES] + EXTRA_SCHEMAS:
        reference = jsonschema.validators.validator_for(schema)(schema)
        assert _validator(schema).is_valid(value) == reference.is_valid(value), schema


@given(st.lists(st.tuples(st.sampled_from(["add", "discard"]), st.integers(0, 2**64 - 1)),
                max_size=400))
@settings(max_examples=60)
def test_compact_set_behaves_like_a_set(ops: list[tuple[str, int]]) -> None:
    """The replay's live-patch set (64-bit keys in one array): same answers as a set."""
    from ouroboros.kernel.patch_index import CompactSet

    compact, reference = CompactSet(capacity=8), set()
    for op, key in ops:
        key = key | 2  # the set marks keys this way; distinct marked keys are distinct
        getattr(compact, op)(key)
        getattr(reference, op)(key)
    assert all((k in compact) for k in reference)
    assert not any((k in compact) for _, k in ops if (k | 2) not in reference)


@pytest.mark.backends("sqlite")  # no ledger
def test_once_computes_per_instance_and_only_once() -> None:
    from dataclasses import dataclass

    from ouroboros.kernel.once import once

    calls: list[int] = []

    @dataclass(frozen=True)
    class Box:
        n: int

        @once
        def double(self) -> int:
            calls.append(self.n)
            return 2 * self.n

    a, b = Box(1), Box(2)
    assert (a.double, a.double, b.double, a.double) == (2, 2, 4, 2)
    assert calls == [1, 2]  # once per object, never shared between objects
    assert isinstance(Box.double, once)


def _reference_envelope_dict(envelope: Any) -> dict[str, Any]:
    """What ``envelope_to_dict`` returned before it was built in one pass."""
    data: dict[str, Any] = envelope.to_dict()
    data["signatures"] = sorted(data["signatures"], key=lambda s: s["keyid"])
    return data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300),
       st.dictionaries(st.text(min_size=1, max_size=12), st.tuples(
           st.binary(min_size=0, max_size=70),
           st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ("keyid", "sig")),
                           any_text, max_size=2)), max_size=4))
def test_envelope_dict_is_byte_identical_to_securesystemslib(
        payload: bytes, sigs: dict[str, tuple[bytes, dict[str, str]]]) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer._signature import Signature

    from ouroboros.kernel.dsse import envelope_to_dict

    envelope = Envelope(payload, "application/vnd.ouroboros.patch+json",
                        {k: Signature(k, raw.hex(), dict(extra))
                         for k, (raw, extra) in sigs.items()})
    got, want = envelope_to_dict(envelope), _reference_envelope_dict(envelope)
    assert got == want
    assert [list(s) for s in got["signatures"]] == [list(s) for s in want["signatures"]]
    with contextlib.suppress(InvalidPatch):  # keys beyond JCS's reach are refused alike
        assert canonical_bytes(got) == canonical_bytes(want)
