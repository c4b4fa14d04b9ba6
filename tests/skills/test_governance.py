"""Skills on the kernel: registration is a `skill` patch gated by the tool's own cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ouroboros.capabilities.skills import SkillStore, ToolRejected
from ouroboros.capabilities.skills.governance import (
    _VERIFIED,
    TEST_NAME,
    attach_tools,
    open_store,
    patch_value,
)
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime

from .conftest import SpecFactory, cases

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    return Runtime.init(tmp_path / "ws")


@pytest.fixture
def wstore(rt: Runtime, runtimes: Runtimes) -> SkillStore:
    return open_store(rt, runtimes)


def test_adding_a_tool_applies_a_signed_skill_patch(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    value = rt.value("skills/double")
    assert value["fingerprint"] == v.fingerprint and value["wasm"] is None
    assert rt.blobs.get(value["files"]["src/main.py"]) == DOUBLE.encode()
    applied = [e for e in rt.log(kind="PatchApplied")
               if e.payload.get("target") == "skills/double"]
    assert len(applied) == 1
    assert rt.verify().events >= 2  # raises IntegrityError on a bad chain
    assert wstore.run("double", 5).output == 10


def _forged(rt: Runtime, value: dict[str, object]) -> str:
    outcome = rt.propose_and_submit(
        type="skill", target="skills/double", value=value, reasoning="forged",
        tests=[TEST_NAME], author="skills", keys=["runtime"],
    )
    assert outcome.status == "rejected", outcome
    assert outcome.stage == "test"
    return outcome.reason


def test_gate_rejects_a_fingerprint_that_does_not_name_the_content(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    value = patch_value(v.meta)
    value["files"] = {**value["files"], "src/main.py": rt.blobs.put(b"print(99)\n")}
    assert "fingerprint does not match" in _forged(rt, value)


def test_gate_runs_the_cases_of_content_it_has_not_seen(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    from ouroboros.capabilities.skills.artifacts import compute_fingerprint
    from ouroboros.capabilities.skills.builders import Built
    from ouroboros.capabilities.skills.spec import ToolSpec

    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    bad_cases = cases((2, 5))
    value = patch_value(v.meta)
    value["files"] = {**value["files"], "tests/cases.json": rt.blobs.put(bad_cases)}
    spec = ToolSpec("double", v.description, "python",
                    {"src/main.py": DOUBLE.encode(), "tests/cases.json": bad_cases},
                    runtime="micropython")
    value["fingerprint"] = compute_fingerprint(
        spec, Built("micropython", "", v.meta["interpreter"], None))
    _VERIFIED.discard(value["fingerprint"])
    assert "expected 5, got 4" in _forged(rt, value)
    assert rt.value("skills/double")["fingerprint"] == v.fingerprint


def test_rollback_of_a_mutation_moves_head_back(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    v1 = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    v2 = wstore.add(make_spec("double", source=DOUBLE.replace("2 *", "3 *"),
                              tests=cases((2, 6))))
    assert wstore.get("double").fingerprint == v2.fingerprint
    patch_hash = [e for e in rt.log(kind="PatchApplied")][-1].payload["patch_hash"]
    outcomes = rt.rollback(patch=patch_hash)
    assert [o.status for o in outcomes] == ["applied"]
    assert rt.value("skills/double")["fingerprint"] == v1.fingerprint
    assert wstore.get("double").fingerprint == v1.fingerprint
    assert wstore.run("double", 1).output == 2


def test_a_version_is_installed_from_blobs_when_missing(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    import shutil

    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    value = rt.value("skills/double")
    shutil.rmtree(v.path)
    from ouroboros.capabilities.skills.governance import install

    install(wstore.root, rt.blobs, "skills/double", value)
    assert json.loads((v.path / "meta.json").read_text())["fingerprint"] == v.fingerprint
    assert wstore.run("double", 3).output == 6


def test_attaching_tools_is_a_kernel_tools_patch(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    out = attach_tools(rt, wstore, "support", ["double"])
    assert out.status == "applied"
    assert rt.value("agents/support/tools") == ["double"]
    denied = attach_tools(rt, wstore, "other", ["double"], keys=["runtime"])
    assert denied.status == "rejected"


def test_rejected_candidate_leaves_no_version_and_no_patch(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected):
        wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 5))))
    assert rt.value("skills/double") is None
    assert not (wstore.tools_dir / "double").exists()


def test_pending_skill_patch_installs_the_version_on_approval(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory
) -> None:
    from ouroboros.capabilities.skills import ToolNotFound, ToolPending

    gates = rt.value("kernel/gates")
    gates["approval"].append({"types": ["skill"], "targets": ["*"]})
    out = rt.submit(rt.sign(rt.propose("config", "kernel/gates", value=gates,
                                       author="operator", reasoning="review new skills"),
                            "root"))
    assert out.status == "applied", out.reason
    with pytest.raises(ToolPending) as pending:
        wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    with pytest.raises(ToolNotFound):
        wstore.get("double")
    assert not (wstore.tools_dir / "double").exists()
    assert rt.approve(pending.value.patch_hash).status == "applied"
    assert wstore.run("double", 8).output == 16


def test_a_workspace_lists_and_restores_tools_from_the_ledger(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory, runtimes: Runtimes
) -> None:
    import shutil

    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    shutil.rmtree(wstore.tools_dir)  # e.g. a workspace restored from its ledger and blobs
    again = open_store(rt, runtimes)
    assert [t.fingerprint for t in again.list()] == [v.fingerprint]
    assert again.run("double", 4).output == 8


def test_gate_rejects_every_single_byte_tamper(
    rt: Runtime, wstore: SkillStore, make_spec: SpecFactory, runtimes: Runtimes
) -> None:
    from types import SimpleNamespace

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ouroboros.capabilities.skills.governance import check_cases

    v = wstore.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    value = patch_value(v.meta)
    assert check_cases(SimpleNamespace(new_value=value, patch=SimpleNamespace(type="skill", target="skills/double")), rt.blobs, runtimes).ok

    @settings(max_examples=40, deadline=None)
    @given(path=st.sampled_from(sorted(value["files"])), where=st.integers(0, 10_000),
           bit=st.integers(0, 7))
    def tamper(path: str, where: int, bit: int) -> None:
        data = bytearray(rt.blobs.get(value["files"][path]))
        data[where % len(data)] ^= 1 << bit
        forged = {**value, "files": {**value["files"], path: rt.blobs.put(bytes(data))}}
        outcome = check_cases(SimpleNamespace(new_value=forged, patch=SimpleNamespace(type="skill", target="skills/double")), rt.blobs, runtimes)
        assert not outcome.ok
        assert ("fingerprint does not match" in outcome.detail
                or "blobs are missing or invalid" in outcome.detail)

    tamper()
