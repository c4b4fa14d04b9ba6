"""The built wheel, installed into a fresh venv, runs the loop on a connected repository.

Lean on purpose: the venv reuses the project venv's packages (a ``.pth`` entry)
and the wheel goes in with ``--no-deps``, so this checks what the wheel itself carries
(package data: the example deployment, schemas, templates, policies) in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False,
                          timeout=300)
    assert proc.returncode in ok, (cmd, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources, and a
    # stale build/ in the work tree would put deleted modules into later wheels.
    proj = tmp / "proj"
    shutil.copytree(ROOT / "src", proj / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, proj / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(proj)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("ouroboros-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    # Reuse the project venv's dependencies: its site-packages as a plain path entry (its
    # own .pth files, such as the editable install's, are not processed from there).
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (env_dir / "lib" / version / "site-packages" / "project-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
         "--no-deps", "-q", str(wheel)], cwd=tmp)
    return env_dir


def test_wheel_runs_the_loop_on_a_connected_repository(installed: Path, tmp_path: Path) -> None:
    py = str(installed / "bin" / "python")
    where = run([py, "-c", "import ouroboros; print(ouroboros.__file__)"], cwd=tmp_path).stdout
    assert where.startswith(str(installed)), where  # the wheel, not the source tree
    env = {**os.environ, "OURO_HOME": str(tmp_path / "ws")}
    env.pop("OURO_LLM_BASE_URL", None)

    def ouro(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        return run([py, "-m", "ouroboros", *args], cwd=tmp_path, env=env, ok=ok)

    ouro("init")
    ouro("improve", "init-example", "deploy")
    run(["git", "clone", "-q", "--bare", "deploy", "deploy.git"], cwd=tmp_path)
    refused = ouro("improve", "connect", "deploy", ok=(2,))  # main checked out: git refuses
    assert "git clone --bare" in refused.stderr
    connected = json.loads(ouro("improve", "connect", "deploy.git", "--json").stdout)
    assert connected["config"].startswith("ouro.toml@")
    ouro("telemetry", "generate", "events.jsonl", "--fault", "web-search-timeouts")
    ouro("telemetry", "ingest", "events.jsonl")
    report = json.loads(ouro("telemetry", "eval", "--propose", "--json").stdout)
    (proposal,) = [p for p in report["proposals"] if p["status"] == "pending"]
    branches = run(["git", "branch", "--list"], cwd=tmp_path / "deploy.git").stdout
    assert f"ouro/proposal-{proposal['id']}" in branches
    done = json.loads(ouro("proposals", "approve", proposal["id"], "--json").stdout)
    assert done["status"] == "implemented"
    head = run(["git", "rev-parse", "main"], cwd=tmp_path / "deploy.git").stdout.strip()
    assert head == done["merge_commit"]
