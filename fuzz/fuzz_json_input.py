"""Strict JSON input and the canonical form (interfaces/json_input.py, kernel/canonical.py).

Invariant: ``loads_strict`` raises only ``UsageError``; a value it accepts has canonical
bytes (``canonical_bytes`` never refuses it), those bytes re-parse strictly to the same
value, canonicalising again gives the same bytes, and ``check_parsed`` accepts it.
"""

from __future__ import annotations

from _harness import ROOT, fixture_lines, fuzz, instrumented

with instrumented(__name__, "rfc8785"):
    from ouroboros.interfaces.json_input import check_parsed, loads_strict
    from ouroboros.kernel.canonical import canonical_bytes, same_value
    from ouroboros.kernel.errors import UsageError


def seeds() -> list[bytes]:
    out = [b"{}", b"[]", b'"text"', b"1.5", b"-0", b"1e300", b'{"a":[1,2,{"b":null}]}',
           b'"\\ud83d\\ude00 \\u00e9"', b'{"\\u00e9":1,"e":2}', b"9007199254740991",
           (ROOT / "src/ouroboros/capabilities/improve/example/agent-deployment/config/"
            "gateway.json").read_bytes()]
    out += fixture_lines("bench/data/skills_tools.jsonl", 5)
    out += fixture_lines("tests/security/data/secrets/harmless.jsonl", 5)
    return out


def test_one(data: bytes) -> None:
    try:
        value = loads_strict(data, "fuzz input")
    except UsageError:
        return
    check_parsed(value, "fuzz input")
    canonical = canonical_bytes(value)
    again = loads_strict(canonical, "canonical bytes")
    assert same_value(again, value), (value, again)
    assert canonical_bytes(again) == canonical, (canonical, canonical_bytes(again))


if __name__ == "__main__":
    fuzz(test_one)
