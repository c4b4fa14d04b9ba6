"""Lineage a caller names: `--parent` is a fingerprint, never a pattern or a path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills import SkillStore, ToolRejected
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.interfaces.cli.tool import app
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
HOSTILE_PARENTS = ["*", "????????????????", "[0-9a-f]*", "../..", "../../../..", "",
                   "0123456789abcdef\n", "0123456789ABCDEF", "０１２３４５６７８９ａｂｃｄｅｆ"]


def _tool_dir(root: Path, name: str) -> Path:
    d = root / name
    (d / "src").mkdir(parents=True)
    (d / "tests").mkdir()
    (d / "src/main.py").write_text(DOUBLE)
    (d / "tests/cases.json").write_bytes(cases((2, 4)))
    (d / "meta.json").write_text(json.dumps({"name": name, "description": f"{name} a number",
                                             "language": "python", "runtime": "micropython"}))
    return d


@pytest.mark.parametrize("parent", HOSTILE_PARENTS)
def test_a_parent_that_is_not_a_fingerprint_is_refused_by_the_store(
    tmp_path: Path, runtimes: Runtimes, parent: str
) -> None:
    rt = Runtime.init(tmp_path / "ws")
    store: SkillStore = open_store(rt, runtimes)
    first = store.add(spec("python", DOUBLE, name="double", runtime="micropython",
                           tests=cases((2, 4))))
    with pytest.raises(ToolRejected, match="parent"):
        store.add(spec("python", DOUBLE, name="triple", runtime="micropython",
                       tests=cases((2, 4), (3, 6))), parent=parent)
    assert rt.value("skills/triple") is None
    assert not (store.tools_dir / "triple").exists()
    assert store.get("double").fingerprint == first.fingerprint


@pytest.mark.parametrize("parent", HOSTILE_PARENTS)
def test_tool_add_with_a_parent_that_is_not_a_fingerprint_is_a_usage_error(
    tmp_path: Path, parent: str
) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    runner = CliRunner()
    ok = runner.invoke(app, ["add", str(_tool_dir(tmp_path, "double")), "--home", str(home)])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(app, ["add", str(_tool_dir(tmp_path, "triple")), "--parent", parent,
                                 "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "bug in ouro" not in result.output
    assert "parent" in result.output
    with Runtime.open(home) as rt:
        assert rt.value("skills/triple") is None
