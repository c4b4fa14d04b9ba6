"""Envelopes, patches and ``Runtime.submit`` (kernel/dsse.py, kernel/patch.py).

The first byte picks what the rest is: an envelope as JSON (``envelope_from_json``, then
``submit``), a patch dict as JSON (``Patch.from_dict``), or a patch payload that the
harness signs with the workspace's runtime key before submitting, so the gates past the
signature check see the fuzzer's bytes (``@LEDGER@`` is replaced by the ledger's genesis
hash). Invariant: only ``OuroError`` subclasses escape; a submit that raises appends
nothing; the ledger verifies after every rejected submit (checked every 50th, and always
for kept crash inputs).
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from pathlib import Path

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
        _RUNTIME = Runtime.init(home / "ws")
    return _RUNTIME


def _patch(op: dict[str, object], target: str = "agents/a/routing") -> dict[str, object]:
    return {"type": "routing", "target": target, "base": _ABSENT, "op": op,
            "reasoning": "r", "test_requirements": [], "author": "operator",
            "created": "2026-01-01T00:00:00.000000Z", "ledger": "@LEDGER@"}


def seeds() -> list[bytes]:
    patches = [_patch({"kind": "value", "value": {"model": "m", "weight": 1}}),
               _patch({"kind": "json_patch", "ops": [{"op": "add", "path": "/a", "value": 1}]}),
               _patch({"kind": "diff", "diff": "@@ -0,0 +1 @@\n+x\n"}, "docs/x.md"),
               _patch({"kind": "delete"})]
    out = [b"\x02" + json.dumps(p).encode() for p in patches]
    out += [b"\x01" + json.dumps(p).encode() for p in patches]
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
    if rejected and (always_verify or _CALLS % 50 == 0):
        rt.verify(workers=1)


def test_one(data: bytes, always_verify: bool = False) -> None:
    global _CALLS
    _CALLS += 1
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
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


if __name__ == "__main__":
    fuzz(test_one)
