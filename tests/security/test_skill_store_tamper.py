"""A workspace writer edits a registered tool's directory; the ledger names the version.

The workspace writer (docs/security.md) may write the tool directories but holds no key:
whatever it edits there, the store must not run, serve or test anything but the content
the ledger's `skill` patch registered.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import SkillStore, ToolCorrupt
from ouroboros.capabilities.skills.blobs import blob_hash
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.capabilities.skills.serving import is_served_id, unserved
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
EVIL = "import json, sys\nprint(json.dumps(666))\n"


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    return Runtime.init(tmp_path / "ws")


@pytest.fixture
def wstore(rt: Runtime, runtimes: Runtimes) -> SkillStore:
    return open_store(rt, runtimes)


def _meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
    return meta


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    (path / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def test_a_source_swapped_with_its_hash_in_meta_json_is_never_run(
    wstore: SkillStore
) -> None:
    v = wstore.add(spec("python", DOUBLE, name="double", runtime="micropython", tests=cases((2, 4))))
    (v.path / "src/main.py").write_text(EVIL)
    meta = _meta(v.path)
    meta["files"]["src/main.py"] = blob_hash(EVIL.encode())
    _write_meta(v.path, meta)
    fresh = SkillStore(wstore.root, blobs=wstore.blobs, runtimes=wstore.runtimes)
    fresh.head_resolver, fresh.tool_lister = wstore.head_resolver, wstore.tool_lister
    for s in (wstore, fresh):
        with pytest.raises(ToolCorrupt):
            s.run("double", 5)
        with pytest.raises(ToolCorrupt):
            s.run("double", 5, fingerprint=v.fingerprint)


def test_tampered_cases_do_not_pass_the_stored_tests_or_reach_a_child(
    wstore: SkillStore
) -> None:
    v = wstore.add(spec("python", DOUBLE, name="double", runtime="micropython", tests=cases((2, 4), (3, 6), (5, 10))))
    (v.path / "tests/cases.json").write_bytes(cases((0, 0)))
    with pytest.raises(ToolCorrupt):
        wstore.test("double")
    with pytest.raises(ToolCorrupt):
        v.cases(include_hidden=True)
    with pytest.raises(ToolCorrupt):
        v.files()


def test_evidence_forged_in_meta_json_does_not_serve_an_unproven_tool(
    rt: Runtime, wstore: SkillStore
) -> None:
    authored = json.dumps([{"input": i, "expected": 2 * i, "source": "author"}
                           for i in (2, 3, 5)]).encode()
    made = spec("python", DOUBLE, name="double", runtime="micropython", tests=authored)
    v = wstore.add(replace(made, origin="llm:hostile"))
    assert not is_served_id(wstore, "double")
    meta = _meta(v.path)
    meta["evidence"] = {**meta["evidence"], "origin": "operator"}
    _write_meta(v.path, meta)
    assert not is_served_id(wstore, "double")
    meta["evidence"] = {**meta["evidence"], "independent": 99}
    _write_meta(v.path, meta)
    assert not is_served_id(wstore, "double")
    assert wstore.list() == [] and "double" in wstore.corrupt  # never offered to solve
    assert unserved(wstore) == set()
    with pytest.raises(ToolCorrupt):
        wstore.get("double")
    assert rt.value("skills/double")["evidence"]["independent"] == 0


@pytest.mark.parametrize("command", [["list"], ["describe", "double"], ["test", "double"],
                                     ["test", "--all"], ["run", "double", "--input", "3"]])
def test_the_cli_names_a_tampered_version_as_an_integrity_error(
    tmp_path: Path, runtimes: Runtimes, command: list[str]
) -> None:
    from typer.testing import CliRunner

    from ouroboros.interfaces.cli.tool import app

    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        v = open_store(rt, runtimes).add(spec("python", DOUBLE, name="double",
                                              runtime="micropython", tests=cases((2, 4))))
    meta = _meta(v.path)
    meta["description"] = "the best tool for every task"
    _write_meta(v.path, meta)
    result = CliRunner().invoke(app, [*command, "--home", str(home), "--json"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "integrity", error
    assert "double@" in error["message"] and "bug in ouro" not in error["hint"]


def test_a_tampered_tool_keeps_its_name_from_a_new_creation(
    wstore: SkillStore
) -> None:
    from ouroboros.capabilities.skills.authoring import ToolAuthor

    v = wstore.add(spec("python", DOUBLE, name="double", runtime="micropython",
                        tests=cases((2, 4))))
    meta = _meta(v.path)
    meta["description"] = "anything"
    _write_meta(v.path, meta)
    author = ToolAuthor(wstore, provider=None)  # type: ignore[arg-type]  # never called
    assert author._free_name("double") == "double_2"
    with pytest.raises(ValueError, match="already exists"):
        author.create("double a number", name="double")


def test_a_child_is_judged_by_the_parents_registered_cases_not_edited_ones(
    rt: Runtime, wstore: SkillStore
) -> None:
    parent = wstore.add(spec("python", DOUBLE, name="double", runtime="micropython",
                             tests=cases((2, 4), (3, 6), (5, 10))))
    easy = cases((0, 0))
    (parent.path / "tests/cases.json").write_bytes(easy)
    meta = _meta(parent.path)
    meta["files"]["tests/cases.json"] = blob_hash(easy)
    _write_meta(parent.path, meta)
    authored = json.dumps([{"input": i, "expected": 0, "source": "author"}
                           for i in (0, 1, 2)]).encode()
    child = replace(spec("python", "print(0)\n", name="double", runtime="micropython",
                         tests=authored), origin="llm:hostile")
    with pytest.raises(ToolCorrupt):
        wstore.add(child)
    assert rt.value("skills/double")["fingerprint"] == parent.fingerprint
    assert [p.name for p in (wstore.tools_dir / "double/versions").iterdir()] == [
        parent.fingerprint]


@pytest.mark.parametrize("damage", ["deleted", "scribbled"])
def test_a_version_whose_folder_and_blob_are_gone_is_corrupt_and_leaves_nothing_half_made(
    rt: Runtime, wstore: SkillStore, damage: str
) -> None:
    import shutil

    v = wstore.add(spec("python", DOUBLE, name="double", runtime="micropython",
                        tests=cases((2, 4))))
    digest = v.meta["files"]["src/main.py"]
    blob = Path(rt.blobs.root) / digest[7:9] / digest[9:]  # type: ignore[attr-defined]
    saved = blob.read_bytes()
    shutil.rmtree(v.path)
    if damage == "deleted":
        blob.unlink()
    else:
        blob.write_bytes(b"print(666)\n")
    fresh = open_store(rt, wstore.runtimes)
    with pytest.raises(ToolCorrupt, match="double"):
        fresh.get("double")
    assert fresh.list() == [] and "double" in fresh.corrupt
    versions = fresh.tools_dir / "double" / "versions"
    assert sorted(p.name for p in versions.iterdir()) == []  # no half-installed folder
    blob.write_bytes(saved)  # put back, the version is installed again from its blobs
    assert fresh.run("double", 5).output == 10
