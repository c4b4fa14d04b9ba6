"""Shared fixtures: one `Runtimes` (engine + on-disk module cache) for the whole session,
so each interpreter and toolchain is compiled at most once per machine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import Limits, SkillStore, ToolSpec
from ouroboros.capabilities.skills.runtimes import Runtimes

STARTER = Path(__file__).resolve().parents[2] / "src/ouroboros/capabilities/skills/starter"


@pytest.fixture(scope="session")
def runtimes() -> Runtimes:
    return Runtimes()


@pytest.fixture
def store(tmp_path: Path, runtimes: Runtimes) -> SkillStore:
    return SkillStore(tmp_path / "skills", runtimes=runtimes)


@pytest.fixture
def small_store(tmp_path: Path, runtimes: Runtimes) -> SkillStore:
    """Tight limits, so hostile tools hit them quickly."""
    limits = Limits(fuel=5_000_000, deadline_s=2.0, memory_bytes=32 << 20, output_bytes=4096)
    return SkillStore(tmp_path / "small", runtimes=runtimes, limits=limits)


def cases(*pairs: tuple[Any, Any], hidden: tuple[tuple[Any, Any], ...] = ()) -> bytes:
    items = [{"input": i, "expected": e} for i, e in pairs]
    items += [{"input": i, "expected": e, "hidden": True} for i, e in hidden]
    return json.dumps(items).encode()


SpecFactory = Callable[..., ToolSpec]


@pytest.fixture
def make_spec() -> SpecFactory:
    def make(
        name: str = "echo",
        language: str = "python",
        source: str = "import sys\nprint(sys.stdin.read())\n",
        tests: bytes | None = None,
        runtime: str | None = "micropython",
        description: str = "echo its input",
    ) -> ToolSpec:
        path = {"python": "src/main.py", "c": "src/main.c", "wat": "src/main.wat",
                "rust": "src/main.rs", "zig": "src/main.zig"}[language]
        return ToolSpec(
            name=name,
            description=description,
            language=language,
            files={path: source.encode(), "tests/cases.json": tests or cases((1, 1))},
            runtime=runtime if language == "python" else None,
        )

    return make
