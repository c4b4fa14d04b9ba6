"""Every gate turns an unexpected exception into a recorded, signed rejection.

The attacker crafts input that makes a gate (or a capability's test, audit or schema)
raise; the submission must still end in one signed ``PatchRejected`` at that gate, the
state must not change, the ledger must verify, and the CLI must exit 3 without a trace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ouroboros.kernel import PatchType, Runtime, TestContext
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.dsse import envelope_to_dict, new_envelope, sign_envelope
from ouroboros.kernel.gates import Submission, default_gates

from .kernelkit import ouro


class Exploding:
    def __init__(self, name: str, error: BaseException) -> None:
        self.name = name
        self.error = error

    def check(self, sub: Submission) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("x"), RecursionError(),
                                   ZeroDivisionError(), MemoryError()])
@pytest.mark.parametrize("position", [0, 2, 5])
def test_a_gate_that_raises_is_a_recorded_rejection(rt: Runtime, error: BaseException,
                                                    position: int) -> None:
    gates = default_gates()
    gates.insert(position, Exploding("exploding", error))
    rt.gates = gates
    before = rt.state_hash()
    out = rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                                reasoning="r", author="tuner")
    assert (out.status, out.stage) == ("rejected", "exploding")
    assert out.reason.startswith(f"the exploding gate failed: {type(error).__name__}")
    event = rt.log()[-1]
    assert event.kind == "PatchRejected" and event.payload["charged"] == []
    assert rt.state_hash() == before
    rt.verify()


def test_a_crashing_type_audit_and_schema_are_rejections(rt: Runtime) -> None:
    def audit(ctx: TestContext) -> list[str]:
        raise ValueError("audit blew up")

    rt.registry.register_type(PatchType("bytecode", {"type": "object"}, audit=audit))
    out = rt.propose_and_submit(type="bytecode", target="flux/p", value={"v": 1},
                                reasoning="r", author="flux")
    assert (out.stage, out.status) == ("audit", "rejected") and "audit blew up" in out.reason
    # A schema whose pattern the validator cannot compile: rejected, not a crash.
    rt.registry.register_type(PatchType("policy", {"type": "string", "pattern": "(["}))
    grant_key = "root"
    out = rt.submit(rt.sign(rt.propose("policy", "agents/a/policy", value="x",
                                       reasoning="r"), grant_key))
    assert out.status == "rejected" and out.stage == "test"
    rt.verify()


@pytest.mark.parametrize("payload", [
    b"\xff\xfe",                                              # not UTF-8
    b'{"type": "prompt"}',                                    # not canonical, not a patch
    b'{"a":' * 2000 + b"1" + b"}" * 2000,                     # deeply nested
    canonical_bytes({"type": "prompt", "target": "agents/\u202eevil", "x": 1}),  # bidi trick
    b'{"type":"prompt","target":"a","base":"sha256:' + b"0" * 64 + b'"}' + b" " * 10,
])
def test_malformed_payloads_are_recorded_rejections(rt: Runtime, payload: bytes) -> None:
    envelope = new_envelope(payload)
    sign_envelope(envelope, rt.signer)
    before = len(rt.log())
    out = rt.submit(envelope)
    assert out.status == "rejected" and out.stage in ("signature", "schema")
    assert len(rt.log()) == before + 1 and rt.log()[-1].kind == "PatchRejected"
    rt.verify()


def test_the_cli_reports_a_crashing_gate_with_exit_3(rt: Runtime, tmp_path: Any) -> None:
    envelope = new_envelope(b'{"not":"a patch"}')
    sign_envelope(envelope, rt.signer)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(envelope_to_dict(envelope)))
    r = ouro("patch", "submit", str(path), "--json", home=rt.home)
    assert r.returncode == 3 and json.loads(r.stdout)["status"] == "rejected"
    assert "Traceback" not in r.stderr
    # an envelope whose payload is not base64 is bad input (exit 2), and nothing is stored
    data = envelope_to_dict(envelope)
    data["payload"] = "%%%"
    path.write_text(json.dumps(data))
    before = len(rt.log())
    r = ouro("patch", "submit", str(path), home=rt.home)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    rt.refresh()
    assert len(rt.log()) == before
