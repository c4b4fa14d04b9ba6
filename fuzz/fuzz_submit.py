"""Envelopes, patches and ``Runtime.submit`` (kernel/dsse.py, kernel/patch.py).

The first byte picks what the rest is: an envelope as JSON (``envelope_from_json``, then
``submit``), a patch dict as JSON (``Patch.from_dict``), a patch payload that the
harness signs with the workspace's runtime key before submitting, so the gates past the
signature check see the fuzzer's bytes (``@LEDGER@`` is replaced by the ledger's genesis
hash), or (the most productive) a patch the harness proposes from a type, a target and
an op whose JSON is the fuzzer's (a value, JSON Patch operations or a diff), signed with
the root key (the runtime key may sign routing only): every gate sees a well-formed patch.

Invariant: only ``OuroError`` subclasses escape; a submit that raises appends nothing;
the kernel's own targets (gates, trust) are never removed; the ledger verifies after a
rejected submit (checked every 50th, and always for kept crash inputs).
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from _harness import fuzz, instrumented

with instrumented(__name__, "securesystemslib"):
    from ouroboros.kernel.dsse import envelope_from_json, new_envelope, sign_envelope
    from ouroboros.kernel.errors import InvalidPatch, OuroError
    from ouroboros.kernel.patch import Patch
    from ouroboros.kernel.runtime import Runtime

_RUNTIME: Runtime | None = None
_CALLS = 0
_ABSENT = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _runtime() -> Runtime:
    """One workspace per process, in a temporary directory (never the repository)."""
    global _RUNTIME
    if _RUNTIME is None:
        home = Path(tempfile.mkdtemp(prefix="ouro-fuzz-submit-"))
        rt = Runtime.init(home / "ws")
        # The breaker would stop every submit after three rejections under the runtime key.
        gates = rt.value("kernel/gates")
        gates["breaker"]["threshold"] = 10**9
        rt.submit(rt.sign(rt.propose("gates", "kernel/gates", value=gates, reasoning="fuzz"),
                          "root"))
        _RUNTIME = rt
    return _RUNTIME


def _patch(op: dict[str, object], target: str = "agents/a/routing") -> dict[str, object]:
    return {"type": "routing", "target": target, "base": _ABSENT, "op": op,
            "reasoning": "r", "test_requirements": [], "author": "operator",
            "created": "2026-01-01T00:00:00.000000Z", "ledger": "@LEDGER@"}


TYPES = ("prompt", "routing", "config", "tools", "policy", "schemas", "gates", "trust")
TARGETS = {"schemas": "kernel/schemas", "gates": "kernel/gates", "trust": "kernel/trust"}
KINDS = ("value", "json_patch", "diff", "delete")


def seeds() -> list[bytes]:
    patches = [_patch({"kind": "value", "value": {"model": "m", "weight": 1}}),
               _patch({"kind": "json_patch", "ops": [{"op": "add", "path": "/a", "value": 1}]}),
               _patch({"kind": "diff", "diff": "@@ -0,0 +1 @@\n+x\n"}, "docs/x.md"),
               _patch({"kind": "delete"})]
    out = [b"\x03\x01" + json.dumps({"weight": 0.5, "fallback": {"model": "m"}}).encode(),
           b"\x03\x00" + json.dumps("You are a careful agent. Cite sources.").encode(),
           b"\x03\x03" + json.dumps(["search", "read_file"]).encode(),
           b"\x03\x02" + json.dumps({"agent": {"tools": ["search"], "timeout_s": 30}}).encode(),
           b"\x03\x0a" + json.dumps([{"op": "add", "path": "/x", "value": 1}]).encode(),
           b"\x03\x10" + json.dumps("@@ -1 +1 @@\n-You are a careful agent. Cite sources.\n"
                                     "\\ No newline at end of file\n+You are an agent.\n").encode()]
    canonical = [json.dumps(p, sort_keys=True, separators=(",", ":")).encode() for p in patches]
    out += [b"\x02" + p for p in canonical] + [b"\x01" + p for p in canonical]
    payload = base64.b64encode(json.dumps(patches[0]).encode()).decode()
    out.append(b"\x00" + json.dumps({
        "payload": payload, "payloadType": "application/vnd.ouroboros.patch+json",
        "signatures": [{"keyid": "k", "sig": "00"}]}).encode())
    return out


def _submit(rt: Runtime, body: bytes | object, always_verify: bool) -> None:
    before = rt.backend.count()
    try:
        outcome = rt.submit(body)  # type: ignore[arg-type]
    except OuroError:
        assert rt.backend.count() == before, "a refused submit appended events"
        rejected = True
    else:
        rejected = outcome.status == "rejected"
        values = rt.refresh().values
        assert "kernel/gates" in values and "kernel/trust" in values, outcome
    if rejected and (always_verify or _CALLS % 50 == 0):
        rt.verify(workers=1)


def test_one(data: bytes, always_verify: bool = False) -> None:
    global _CALLS
    _CALLS += 1
    if not data:
        return
    mode, body = data[0] % 4, data[1:]
    if mode == 3:
        _proposed(body, always_verify)
        return
    if mode == 0:
        with contextlib.suppress(InvalidPatch):
            envelope_from_json(body)
        _submit(_runtime(), body, always_verify)
        return
    rt = _runtime()
    body = body.replace(b"@LEDGER@", rt.refresh().ledger_id.encode())
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return
    if mode == 1:
        try:
            patch = Patch.from_dict(parsed)
        except InvalidPatch:
            return
        assert Patch.from_dict(json.loads(patch.canonical())) == patch
        return
    envelope = new_envelope(body)
    sign_envelope(envelope, rt.signer)
    _submit(rt, envelope, always_verify)


def _proposed(body: bytes, always_verify: bool) -> None:
    if not body:
        return
    kind_type, text = body[0], body[1:]
    type_, kind = TYPES[kind_type % len(TYPES)], KINDS[(kind_type // len(TYPES)) % len(KINDS)]
    target = TARGETS.get(type_, f"agents/a/{type_}")
    try:
        op: Any = json.loads(text) if kind != "delete" else True
    except (ValueError, RecursionError):
        return
    rt = _runtime()
    try:
        patch = rt.propose(type_, target, reasoning="fuzz", **{kind: op})
    except OuroError:
        return
    except Exception as e:  # what propose does with a non-JSON-shaped op
        raise AssertionError(f"propose raised {e!r}") from e
    _submit(rt, rt.sign(patch, "root"), always_verify)


if __name__ == "__main__":
    fuzz(test_one)
