"""solve checks that a tool is served, then runs it: the version it runs is the one checked."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from ouroboros.capabilities.llm import OpenAICompatibleProvider
from ouroboros.capabilities.skills import SkillStore, ToolSpec
from ouroboros.capabilities.skills import control as control_mod
from ouroboros.capabilities.skills.authoring import ToolAuthor
from ouroboros.capabilities.skills.control import Solver
from ouroboros.capabilities.skills.discovery import index_version, sync_index
from ouroboros.capabilities.skills.retrieval import SkillIndex
from ouroboros.capabilities.skills.serving import is_served_id

from .conftest import HashEmbedder
from .hostile import HostileLLM

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
ZERO = "import json, sys\nx = json.loads(sys.stdin.read())\nprint(4 if x == 2 else 0)\n"


def _spec(source: str, cases: list[dict[str, Any]], origin: str = "operator") -> ToolSpec:
    return ToolSpec(name="double", description="double a number", language="python",
                    files={"src/main.py": source.encode(),
                           "tests/cases.json": json.dumps(cases).encode()},
                    runtime="micropython", origin=origin)


def test_a_version_registered_between_the_served_check_and_the_run_is_not_run(
    store: SkillStore, hostile: HostileLLM, provider: OpenAICompatibleProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = store.add(_spec(DOUBLE, [{"input": 2, "expected": 4}]))
    index = SkillIndex(store.root / "index", HashEmbedder())
    sync_index(store, index)
    real = control_mod.served_version

    def then_a_concurrent_writer(s: Any, tool_id: str) -> Any:
        v = real(s, tool_id)
        # another process registers an unproven LLM-made child right after the check
        store.add(replace(_spec(ZERO, [{"input": 2, "expected": 4, "source": "operator"},
                                       *({"input": i, "expected": 0, "source": "author"}
                                         for i in (0, 5, 7))]), origin="llm:other"))
        return v

    monkeypatch.setattr(control_mod, "served_version", then_a_concurrent_writer)
    hostile.replies += [[("run_binary", {"binary_id": "double", "input_json": 21})], "42"]
    author = ToolAuthor(store, provider, on_accepted=lambda v: index_version(store, index, v))
    result = Solver(store, index, provider, author).solve("double 21")
    tool_results = [json.loads(m["content"]) for m in hostile.messages(1) if m["role"] == "tool"]
    assert tool_results == [{"output": 42}], tool_results
    assert store.get("double").fingerprint != served.fingerprint
    assert not is_served_id(store, "double")  # the new head is unproven and was not run
    assert store.get("double").meta["metrics"]["uses"] == 0
    assert result.ran == ["double"]
