"""A `skill` patch names its tool twice, in its target and in its value: both must agree.

A key trusted for `skill` patches (the runtime key, or one delegated to) could register a
version under a target that is not its tool's (another tool's name, or a nested path the
store cannot name), which broke every listing (`ouro tool list`, solve, `ouro serve`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.governance import TEST_NAME, open_store, patch_value
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"


@pytest.mark.parametrize("target", ["skills/other", "skills/double/versions",
                                    "skills/double/x", "skills/Double", "skills/double_"])
def test_a_skill_patch_for_another_target_than_its_tool_is_rejected(
    tmp_path: Path, runtimes: Runtimes, target: str
) -> None:
    rt = Runtime.init(tmp_path / "ws")
    store: SkillStore = open_store(rt, runtimes)
    v = store.add(spec("python", DOUBLE, name="double", runtime="micropython",
                       tests=cases((2, 4))))
    outcome = rt.propose_and_submit(
        type="skill", target=target, value=patch_value(v.meta), reasoning="elsewhere",
        tests=[TEST_NAME], author="skills", keys=["runtime"])
    assert outcome.status == "rejected", outcome
    assert outcome.stage == "test" and "target" in outcome.reason
    assert rt.value(target) is None
    assert [t.tool_id for t in store.list()] == ["double"] and store.corrupt == {}
    assert store.run("double", 5).output == 10
