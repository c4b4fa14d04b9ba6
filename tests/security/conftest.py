"""The hostile-tool corpus's fixtures: a real workspace (ledger, blobs, keys, skill store on
the kernel) and a check that a refused tool left nothing anywhere in it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import Limits, SkillStore, ToolRejected, ToolSpec, open_store
from ouroboros.capabilities.skills.building import BuildLimits
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import ManualClock, Runtime

SOURCE_PATHS = {"python": "src/main.py", "c": "src/main.c", "wat": "src/main.wat",
                "rust": "src/main.rs", "zig": "src/main.zig"}
# Limits that make a bomb end in seconds while an honest tool still builds on a busy CI box.
BUILD_LIMITS = BuildLimits(timeout_s=120, memory_bytes=2 << 30)
RUN_LIMITS = Limits(fuel=50_000_000, deadline_s=3.0, memory_bytes=64 << 20, output_bytes=4096)


@dataclass(frozen=True)
class Footprint:
    """Everything a registration would leave: ledger events, blobs, files under tools/."""

    events: int
    blobs: frozenset[str]
    tool_files: frozenset[str]
    skills_state: frozenset[str]


@dataclass
class Ward:
    """A workspace under attack."""

    rt: Runtime
    store: SkillStore
    home: Path

    @property
    def key_path(self) -> Path:
        return self.home / "keys" / "root.key"

    def footprint(self) -> Footprint:
        blobs = self.home / "blobs"
        tools = self.store.tools_dir
        return Footprint(
            events=len(self.rt.log()),
            blobs=frozenset(str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file()),
            tool_files=frozenset(str(p.relative_to(tools)) for p in tools.rglob("*")
                                 if p != tools / ".staging") if tools.exists() else frozenset(),
            skills_state=frozenset(t for t, v in self.rt.refresh().values.items()
                                   if t.startswith("skills/") and v is not None),
        )

    def refuses(self, attack: Callable[[], object], reason: str | tuple[str, ...],
                match: str) -> ToolRejected:
        """`attack` (an add) is rejected for `reason`, its detail matches `match`, and the
        workspace is exactly as it was: no event, no blob, no file, no tool version."""
        before = self.footprint()
        with pytest.raises(ToolRejected) as err:
            attack()
        reasons = (reason,) if isinstance(reason, str) else reason
        assert err.value.reason in reasons, err.value.detail
        assert _search(match, err.value.detail), err.value.detail
        assert self.footprint() == before
        return err.value

    def refuses_spec(self, spec: ToolSpec, reason: str | tuple[str, ...], match: str
                     ) -> ToolRejected:
        return self.refuses(lambda: self.store.add(spec), reason, match)

    def refuses_dir(self, path: Path, reason: str | tuple[str, ...], match: str
                    ) -> ToolRejected:
        return self.refuses(lambda: self.store.add_dir(path), reason, match)


def _search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text, re.IGNORECASE | re.DOTALL) is not None


@pytest.fixture(scope="session")
def runtimes() -> Runtimes:
    return Runtimes()


@pytest.fixture
def ward(tmp_path: Path, runtimes: Runtimes) -> Iterator[Ward]:
    rt = Runtime.init(tmp_path / "ws", clock=ManualClock())
    store = open_store(rt, runtimes, limits=RUN_LIMITS, build_limits=BUILD_LIMITS)
    yield Ward(rt, store, tmp_path / "ws")
    rt.close()


def cases(*pairs: tuple[Any, Any]) -> bytes:
    return json.dumps([{"input": i, "expected": e} for i, e in pairs]).encode()


def spec(language: str, source: str | bytes, *, name: str = "hostile",
         runtime: str | None = None, extra: dict[str, bytes] | None = None,
         tests: bytes | None = None) -> ToolSpec:
    """A hostile tool: its source, tests that pass only if the attack worked, more files."""
    data = source.encode() if isinstance(source, str) else source
    files = {SOURCE_PATHS[language]: data, "tests/cases.json": tests or cases((1, "pwned"))}
    files.update(extra or {})
    return ToolSpec(name=name, description="a hostile tool", language=language, files=files,
                    runtime=runtime)


def write_tool_dir(root: Path, language: str, source: str, *, runtime: str | None = None
                   ) -> Path:
    """A tool directory on disk (meta.json, the source, tests/cases.json)."""
    root.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"name": "hostile", "description": "a hostile tool",
                            "language": language}
    if runtime:
        meta["runtime"] = runtime
    (root / "meta.json").write_text(json.dumps(meta))
    src = root / SOURCE_PATHS[language]
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(source)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "cases.json").write_bytes(cases((1, 1)))
    return root


def is_root() -> bool:
    return os.geteuid() == 0
