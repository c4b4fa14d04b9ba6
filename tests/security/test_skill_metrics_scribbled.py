"""A version's usage metrics (meta.json's one field that changes with use) scribbled on disk:
every command still reads the version, and the next call records on a clean count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.interfaces.cli.main import app
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
SCRIBBLES: list[Any] = ["x", [1, 2], None, {"uses": "many"}, {"uses": -3, "failures": 1.5},
                        {"recent_ms": "zz"}, {"recent_ms": [1, "a", None, 2]},
                        {"p50_ms": "x", "p95_ms": [1]}, {"last_used": 5}]


@pytest.mark.parametrize("scribble", SCRIBBLES, ids=[json.dumps(s) for s in SCRIBBLES])
def test_scribbled_metrics_neither_break_a_listing_nor_the_next_call(
    tmp_path: Path, runtimes: Runtimes, scribble: Any
) -> None:
    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        v = open_store(rt, runtimes).add(spec("python", DOUBLE, name="double",
                                              runtime="micropython", tests=cases((2, 4))))
    meta = json.loads((v.path / "meta.json").read_text())
    meta["metrics"] = scribble
    (v.path / "meta.json").write_text(json.dumps(meta))
    runner = CliRunner()
    for args in (["tool", "list"], ["tool", "list", "--json"], ["tool", "describe", "double"],
                 ["tool", "run", "double", "--input", "3"], ["tool", "list", "--json"]):
        result = runner.invoke(app, [*args, "--home", str(home)])
        assert result.exit_code == 0, (args, result.output)
    (listed,) = json.loads(result.stdout)
    metrics = listed["metrics"]
    assert type(metrics["uses"]) is int and metrics["uses"] >= 1
    assert type(metrics["failures"]) is int and metrics["failures"] >= 0
    assert metrics["p50_ms"] is None or isinstance(metrics["p50_ms"], float)
