"""The audit gate against text tricks: each hostile patch is rejected *at the audit
stage*, the rejection is recorded in the ledger, and no state changes. Harmless
look-alikes of every trick still pass (the false-positive check)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import Runtime

from .corpus import EVASIONS, LOOKALIKES, Case
from .kit import grant_key, lift_breaker

_authors = itertools.count()


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One workspace for the module; each case has its own target and author. Breakers
    count a signing key's rejections, and every case is signed by `mallory`: the breaker
    is lifted out of the way here (it has tests of its own)."""
    runtime = Runtime.init(Path(tmp_path_factory.mktemp("audit")) / "ws")
    lift_breaker(runtime)
    grant_key(runtime, "mallory", ["prompt", "config", "policy", "tools", "routing"])
    # Existing values to patch: tools already granted, a config with a tool list.
    for kind, target, value in [("tools", "agents/base/tools", ["search", "read_file"]),
                                ("config", "agents/base/config",
                                 {"agent": {"tools": ["search"], "timeout_s": 30}})]:
        out = runtime.submit(runtime.sign(runtime.propose(
            kind, target, value=value, reasoning="seed", author="operator"), "root"))
        assert out.status == "applied", out
    yield runtime
    runtime.close()


def _value(rt: Runtime, target: str) -> Any:
    values = rt.refresh().values
    return values.get(target)


def _submit(rt: Runtime, case: Case) -> tuple[Any, str]:
    n = next(_authors)
    target = case.target.replace("{n}", str(n))
    patch = rt.propose(case.type, target, value=case.value, reasoning=case.reasoning,
                       author=f"mallory-{n}")
    return rt.submit(rt.sign(patch, "mallory")), target


@pytest.mark.parametrize("case", EVASIONS, ids=[c.id for c in EVASIONS])
def test_evasion_is_rejected_at_audit_and_nothing_changes(rt: Runtime, case: Case) -> None:
    before_hash, before_len = rt.state_hash(), len(rt.log())
    before_value = _value(rt, case.target)
    out, target = _submit(rt, case)
    assert _value(rt, target) == before_value
    assert (out.status, out.stage) == ("rejected", "audit"), out
    assert case.reason in out.reason, out.reason
    events = rt.log(since=before_len)
    assert [e.kind for e in events] == ["PatchRejected"]
    assert events[0].payload["stage"] == "audit"
    assert events[0].payload["patch_hash"] == out.patch_hash
    assert rt.state_hash() == before_hash
    record = rt.refresh().index.record(out.patch_hash)
    assert record is None or record.applied is None


@pytest.mark.parametrize("case", LOOKALIKES, ids=[c.id for c in LOOKALIKES])
def test_harmless_lookalike_passes(rt: Runtime, case: Case) -> None:
    out, target = _submit(rt, case)
    assert out.status == "applied", out.reason
    assert _value(rt, target) == case.value


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(EVASIONS) >= 50
    assert len({c.id for c in EVASIONS}) == len(EVASIONS)
    assert len(LOOKALIKES) >= 25
    kinds = {c.type for c in EVASIONS}
    assert {"prompt", "config", "policy", "routing", "tools"} <= kinds
