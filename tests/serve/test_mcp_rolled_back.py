"""MCP's run_tool with the `version` of a rolled-back version: a `rolled_back` tool error
naming it (the same capability check as the CLI and HTTP), never the rolled-back code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mcp import Client, StdioServerParameters

import ouroboros
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.output import open_runtime

from .conftest import new_workspace
from .test_mcp import run, stdio, text


def same_code(home: Path) -> StdioServerParameters:
    """`ouro mcp` on the code under test (the SDK passes the child no PYTHONPATH, so it
    would import whatever ouroboros the interpreter has installed)."""
    params = stdio(home)
    src = str(Path(ouroboros.__file__).resolve().parents[1])
    return params.model_copy(update={"env": {**(params.env or {}), "PYTHONPATH": src}})


def test_run_tool_refuses_a_rolled_back_version_and_runs_an_applied_one(
        tmp_path: Path) -> None:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    home = new_workspace(tmp_path / "ws")
    starter = next(d for d in starter_dirs() if d.name == "sum_ints")
    second = tmp_path / "sum_ints"
    shutil.copytree(starter, second)
    meta = json.loads((second / "meta.json").read_text())
    (second / "meta.json").write_text(json.dumps({**meta, "description": "Sum, again."}))
    with open_runtime(home) as rt:
        store = open_store(rt)
        v1, v2 = store.add_dir(starter), store.add_dir(second)
        rt.rollback(patch=rt.log(kind="PatchApplied")[-1].payload["patch_hash"])
        assert rt.value("skills/sum_ints")["fingerprint"] == v1.fingerprint

    async def go() -> None:
        async with Client(same_code(home), mode="legacy") as client:
            refused = await client.call_tool("run_tool", {"name": "sum_ints", "input": [1, 2],
                                                          "version": v2.fingerprint})
            assert refused.is_error and refused.structured_content is not None, (
                v1.fingerprint, v2.fingerprint, text(refused))
            error = refused.structured_content["error"]
            assert error["code"] == "rolled_back", error
            assert v2.fingerprint in error["message"] and "Traceback" not in text(refused)
            ran = await client.call_tool("run_tool", {"name": "sum_ints", "input": [1, 2],
                                                      "version": v1.fingerprint})
            assert not ran.is_error and json.loads(text(ran))["output"] == 3
            shown = json.loads(text(await client.call_tool(
                "describe_tool", {"name": "sum_ints", "version": v2.fingerprint})))
            assert shown["status"] == "rolled_back" and "ledger seq" in shown["rolled_back"]

    run(go)
