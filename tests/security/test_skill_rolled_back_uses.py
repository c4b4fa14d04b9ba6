"""A rolled-back version is refused everywhere it could still act, not only by `run`.

`tool test --version` would vouch for it, `--parent` would resurrect it as the lineage of a
new child (its cases judging the child), and `describe` must say it is rolled back rather
than show it as served. Each refusal is ToolRolledBack naming the rollback's ledger seq.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills import ToolRolledBack
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.tool import app
from ouroboros.kernel import Runtime


def _variant(tmp_path: Path, name: str, description: str) -> Path:
    starter = next(d for d in starter_dirs() if d.name == "sum_ints")
    target = tmp_path / name
    shutil.copytree(starter, target)
    meta = json.loads((target / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps({**meta, "description": description}))
    return target


@pytest.fixture(scope="module")
def rolled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """sum_ints v1 (applied) and v2 (registered, then rolled back)."""
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    tmp = tmp_path_factory.mktemp("rolled")
    home = tmp / "ws"
    with Runtime.init(home) as rt:
        store = open_store(rt)
        v1 = store.add_dir(_variant(tmp, "a", "Sum a list of integers."))
        v2 = store.add_dir(_variant(tmp, "b", "Sum a list of integers, again."))
        undo = rt.rollback(patch=rt.log(kind="PatchApplied")[-1].payload["patch_hash"])
        assert rt.value("skills/sum_ints")["fingerprint"] == v1.fingerprint
        seq = rt.refresh().seq
    return {"home": home, "v1": v1.fingerprint, "v2": v2.fingerprint, "seq": seq,
            "undo": undo, "tmp": tmp}


def _cli(home: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--home", str(home)])


def test_store_test_and_parent_refuse_a_rolled_back_version_naming_the_seq(
        rolled: dict[str, Any]) -> None:
    with Runtime.open(rolled["home"]) as rt:
        store = open_store(rt)
        with pytest.raises(ToolRolledBack, match=rf"{rolled['v2']}.*ledger seq \d+"):
            store.test("sum_ints", rolled["v2"])
        with pytest.raises(ToolRolledBack, match=rolled["v2"]):
            store.test_batch("sum_ints", rolled["v2"])
        assert store.test("sum_ints", rolled["v1"]).passed  # an applied old version still is
        assert store.rolled_back(store.get("sum_ints", rolled["v1"])) is None
        before = len(rt.log())
        child = _variant(rolled["tmp"], "child", "Sum integers, child of a rolled-back one.")
        with pytest.raises(ToolRolledBack, match=rolled["v2"]):
            store.add_dir(child, parent=rolled["v2"])
        assert len(rt.log()) == before  # nothing registered
        assert {p.name for p in (store.tools_dir / "sum_ints" / "versions").iterdir()} == {
            rolled["v1"], rolled["v2"]}


def test_cli_test_version_of_a_rolled_back_version_exits_2(rolled: dict[str, Any]) -> None:
    result = _cli(rolled["home"], "test", "sum_ints", "--version", rolled["v2"], "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "rolled_back", error
    assert rolled["v2"] in error["message"] and "ledger seq" in error["message"]
    assert "Traceback" not in result.output
    ok = _cli(rolled["home"], "test", "sum_ints", "--version", rolled["v1"])
    assert ok.exit_code == 0, ok.output


def test_cli_add_with_a_rolled_back_parent_exits_2_and_registers_nothing(
        rolled: dict[str, Any]) -> None:
    child = _variant(rolled["tmp"], "child2", "Sum integers, resurrecting a rolled-back one.")
    with Runtime.open(rolled["home"]) as rt:
        before = len(rt.log())
    result = _cli(rolled["home"], "add", str(child), "--parent", rolled["v2"], "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "rolled_back" and rolled["v2"] in error["message"], error
    with Runtime.open(rolled["home"]) as rt:
        assert len(rt.log()) == before
        assert rt.value("skills/sum_ints")["fingerprint"] == rolled["v1"]


def test_cli_describe_of_a_rolled_back_version_says_so(rolled: dict[str, Any]) -> None:
    result = _cli(rolled["home"], "describe", "sum_ints", "--version", rolled["v2"], "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["status"] == "rolled_back", info["status"]
    assert "ledger seq" in info["rolled_back"], info["rolled_back"]
    text = _cli(rolled["home"], "describe", "sum_ints", "--version", rolled["v2"])
    assert text.exit_code == 0 and "rolled back at ledger seq" in text.stdout, text.output
    current = json.loads(_cli(rolled["home"], "describe", "sum_ints", "--json").stdout)
    assert current["status"] != "rolled_back" and current["rolled_back"] is None


def test_adding_a_rolled_back_version_again_registers_it_again(tmp_path: Path) -> None:
    """`tool add` of the very files of a rolled-back version answered "added" with its
    fingerprint while the ledger kept the older one current (and `run --version` refused
    it): the identical version is submitted again, through the gates, and is current."""
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    home = tmp_path / "ws"
    a = _variant(tmp_path, "a", "Sum a list of integers.")
    b = _variant(tmp_path, "b", "Sum a list of integers, again.")
    with Runtime.init(home) as rt:
        store = open_store(rt)
        v1, v2 = store.add_dir(a), store.add_dir(b)
        rt.rollback(patch=rt.log(kind="PatchApplied")[-1].payload["patch_hash"])
        assert rt.value("skills/sum_ints")["fingerprint"] == v1.fingerprint
    result = _cli(home, "add", str(b), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fingerprint"] == v2.fingerprint
    with Runtime.open(home) as rt:
        assert rt.value("skills/sum_ints")["fingerprint"] == v2.fingerprint
        store = open_store(rt)
        assert store.rolled_back(store.get("sum_ints", v2.fingerprint)) is None
        assert store.run("sum_ints", [1, 2], fingerprint=v2.fingerprint).output == 3
    again = _cli(home, "add", str(a), "--json")  # an applied old version: returned as is
    assert again.exit_code == 0, again.output
    with Runtime.open(home) as rt:
        assert rt.value("skills/sum_ints")["fingerprint"] == v2.fingerprint
