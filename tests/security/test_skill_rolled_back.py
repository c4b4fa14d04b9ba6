"""A version the ledger rolled back, and old versions' metadata edited on disk.

The ledger says which tool versions are applied. A rollback leaves the version's folder on
disk (history is never deleted), so `--version` must ask the ledger, not the folder; and
every version's meta.json (not only the current one's) must be the value the ledger
committed for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills import SkillStore, ToolCorrupt, ToolNotFound
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.interfaces.cli.tool import app
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
DOUBLE_V2 = "import json, sys\nx = json.loads(sys.stdin.read())\nprint(json.dumps(x + x))\n"
DOUBLE_V3 = "import json, sys\nx = json.loads(sys.stdin.read())\nprint(json.dumps(x * 2))\n"


def _add(store: SkillStore, source: str, **kw: Any) -> Any:
    return store.add(spec("python", source, name="double", runtime="micropython",
                          tests=cases((2, 4), (3, 6))), **kw)


def _patch_of(rt: Runtime, fingerprint: str) -> str:
    for ev in rt.log(kind="PatchApplied"):
        value = rt.state_at(ev.seq).values.get("skills/double")
        if ev.payload["target"] == "skills/double" and value and \
                value["fingerprint"] == fingerprint and not ev.payload.get("rollback_of"):
            return str(ev.payload["patch_hash"])
    raise AssertionError(fingerprint)


def test_a_rolled_back_version_is_refused_by_version_and_applied_ones_still_run(
    tmp_path: Path, runtimes: Runtimes
) -> None:
    rt = Runtime.init(tmp_path / "ws")
    store = open_store(rt, runtimes)
    v1 = _add(store, DOUBLE)
    v2 = _add(store, DOUBLE_V2)
    v3 = _add(store, DOUBLE_V3)
    rt.rollback(patch=_patch_of(rt, v3.fingerprint))
    assert rt.value("skills/double")["fingerprint"] == v2.fingerprint
    fresh = open_store(rt, runtimes)
    for s in (store, fresh):  # the warm store cached v3 runnable before the rollback
        with pytest.raises(ToolNotFound, match="rolled back"):
            s.run("double", 5, fingerprint=v3.fingerprint)
        assert s.run("double", 5, fingerprint=v1.fingerprint).output == 10  # still applied
        assert s.run("double", 5, fingerprint=v2.fingerprint).output == 10
        assert s.run("double", 5).output == 10
    assert not (v3.path / "calls.log").exists()  # a refused call is not a use


def test_rollback_to_before_a_tool_refuses_every_version_of_it(
    tmp_path: Path, runtimes: Runtimes
) -> None:
    rt = Runtime.init(tmp_path / "ws")
    before = rt.refresh().seq
    store = open_store(rt, runtimes)
    v1 = _add(store, DOUBLE)
    store.run("double", 1, fingerprint=v1.fingerprint)
    rt.rollback(to=before)
    for fp in (v1.fingerprint, None):
        with pytest.raises(ToolNotFound):
            store.run("double", 5, fingerprint=fp)


def test_tool_run_version_of_a_rolled_back_version_exits_2_naming_the_rollback(
    tmp_path: Path, runtimes: Runtimes
) -> None:
    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        store = open_store(rt, runtimes)
        v1 = _add(store, DOUBLE)
        v2 = _add(store, DOUBLE_V2)
        rt.rollback(patch=_patch_of(rt, v2.fingerprint))
    runner = CliRunner()
    result = runner.invoke(app, ["run", "double", "--input", "5", "--version", v2.fingerprint,
                                 "--home", str(home), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert "rolled back" in error["message"] and v2.fingerprint in error["message"]
    assert "Traceback" not in result.output
    ok = runner.invoke(app, ["run", "double", "--input", "5", "--version", v1.fingerprint,
                             "--home", str(home)])
    assert ok.exit_code == 0 and ok.stdout.strip() == "10", ok.output


def _meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
    return meta


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    (path / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("field,forged", [
    ("parent", "0123456789abcdef"),
    ("parent", None),
    ("tests", {"passed": 99, "failed": 0, "total": 99, "hidden": 50}),
    ("evidence", {"origin": "operator", "cases": {"operator": 99}, "independent": 99,
                  "properties": 0}),
    ("created", "1999-01-01T00:00:00+00:00"),
    ("input_schema", {"type": "string"}),
    ("created", float("nan")),  # JSON a canonical hash cannot take
    ("tests", {"passed": 2**80}),
    ("description", "\ud800 lone surrogate"),
])
def test_an_old_versions_edited_meta_json_is_corrupt(
    tmp_path: Path, runtimes: Runtimes, field: str, forged: Any
) -> None:
    rt = Runtime.init(tmp_path / "ws")
    store = open_store(rt, runtimes)
    v1 = _add(store, DOUBLE)
    v2 = _add(store, DOUBLE_V2)
    meta = _meta(v1.path if field != "parent" else v2.path)
    old = v1 if field != "parent" else v2
    v3 = _add(store, DOUBLE_V3)  # v2 is old now too
    assert meta.get(field) is not forged
    meta[field] = forged
    _write_meta(old.path, meta)
    fresh = open_store(rt, runtimes)
    with pytest.raises(ToolCorrupt, match=old.fingerprint):
        fresh.get("double", old.fingerprint)
    with pytest.raises(ToolCorrupt):
        fresh.run("double", 5, fingerprint=old.fingerprint)
    with pytest.raises(ToolCorrupt):
        fresh.lineage("double")
    with pytest.raises(ToolCorrupt):
        fresh.versions("double")
    assert fresh.get("double").fingerprint == v3.fingerprint


def test_untouched_old_versions_read_as_before(tmp_path: Path, runtimes: Runtimes) -> None:
    rt = Runtime.init(tmp_path / "ws")
    store = open_store(rt, runtimes)
    v1 = _add(store, DOUBLE)
    v2 = _add(store, DOUBLE_V2)
    v3 = _add(store, DOUBLE_V3)
    store.run("double", 1, fingerprint=v1.fingerprint)  # metrics change: still genuine
    fresh = open_store(rt, runtimes)
    assert [v.fingerprint for v in fresh.lineage("double")] == [
        v1.fingerprint, v2.fingerprint, v3.fingerprint]
    assert {v.fingerprint for v in fresh.versions("double")} == {
        v1.fingerprint, v2.fingerprint, v3.fingerprint}  # ordered by second of creation
    assert fresh.get("double", v1.fingerprint).meta["metrics"]["uses"] == 1


@pytest.mark.parametrize("forged", [float("nan"), 2**80, "\ud800 lone surrogate"])
def test_a_current_meta_json_no_canonical_hash_can_take_is_corrupt_not_an_invalid_patch(
    tmp_path: Path, runtimes: Runtimes, forged: Any
) -> None:
    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        v = _add(open_store(rt, runtimes), DOUBLE)
    meta = _meta(v.path)
    meta["description"] = forged
    _write_meta(v.path, meta)
    for command in (["describe", "double"], ["run", "double", "--input", "3"]):
        result = CliRunner().invoke(app, [*command, "--home", str(home), "--json"])
        assert result.exit_code == 1, result.output
        assert json.loads(result.stdout)["error"]["code"] == "integrity", result.output
