"""Class 4: a signed patch is bound to one ledger and may carry an expiry.

The attacker replays an envelope signed for workspace A into workspace B, which trusts the
same key, or submits a signed patch after it expired, or edits the binding.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from ouroboros.kernel import ManualClock, Runtime
from ouroboros.kernel.dsse import envelope_to_dict

from .kernelkit import grant, ouro


@pytest.fixture
def pair(tmp_path: Path, clock: ManualClock) -> tuple[Runtime, Runtime]:
    a = Runtime.init(tmp_path / "a", clock=clock)
    b = Runtime.init(tmp_path / "b", clock=clock)
    grant(a, "alice", ["prompt"])
    b.keyring.root.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".pub"):  # the same person, trusted by both workspaces
        shutil.copy(a.keyring.root / f"alice{suffix}", b.keyring.root / f"alice{suffix}")
    grant(b, "alice", ["prompt"])
    return a, b


def test_an_envelope_signed_for_one_ledger_is_refused_by_another(
        pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    envelope = a.sign(a.propose("prompt", "agents/x/prompt", value="for A only", reasoning="r",
                                author="alice"), "alice")
    assert a.submit(envelope).status == "applied"
    out = b.submit(envelope_to_dict(envelope))
    assert (out.status, out.stage) == ("rejected", "schema")
    assert "bound to ledger" in out.reason and "signed for another workspace" in out.reason
    assert b.value("agents/x/prompt") is None
    assert b.log()[-1].payload["charged"] == []  # a replay is not alice's doing
    a.close()
    b.close()


def test_editing_the_binding_breaks_the_signature(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    data = envelope_to_dict(a.sign(a.propose("prompt", "agents/x/prompt", value="v",
                                             reasoning="r", author="alice"), "alice"))
    patch = json.loads(base64.b64decode(data["payload"]))
    patch["ledger"] = b.ledger_id
    from ouroboros.kernel.canonical import canonical_bytes

    data["payload"] = base64.b64encode(canonical_bytes(patch)).decode()
    out = b.submit(data)
    assert out.stage == "signature" and "does not verify" in out.reason
    a.close()
    b.close()


def test_an_expired_patch_is_refused_and_a_live_one_applies(
        pair: tuple[Runtime, Runtime], clock: ManualClock) -> None:
    a, b = pair
    soon = clock.now() + timedelta(minutes=5)
    late = a.sign(a.propose("prompt", "agents/x/prompt", value="late", reasoning="r",
                            author="alice", expires=soon), "alice")
    live = a.sign(a.propose("prompt", "agents/y/prompt", value="live", reasoning="r",
                            author="alice", expires=soon), "alice")
    assert a.submit(live).status == "applied"
    clock.advance(minutes=5)
    out = a.submit(late)
    assert (out.status, out.stage) == ("rejected", "schema")
    assert out.reason == f"the patch expired at {json.loads(late.payload)['expires']}"
    assert a.value("agents/x/prompt") is None and a.log()[-1].payload["charged"] == []
    a.close()
    b.close()


def test_the_cli_refuses_a_foreign_envelope_with_exit_3(pair: tuple[Runtime, Runtime],
                                                        tmp_path: Path) -> None:
    a, b = pair
    env = tmp_path / "env.json"
    env.write_text(json.dumps(envelope_to_dict(a.sign(a.propose(
        "prompt", "agents/x/prompt", value="v", reasoning="r", author="alice"), "alice"))))
    home = b.home
    a.close()
    b.close()
    r = ouro("patch", "submit", str(env), home=home)
    assert r.returncode == 3 and "bound to ledger" in r.stdout
