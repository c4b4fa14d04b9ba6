"""`--executor ray` on the command line: the same answer as the process pool, a clean
exit (no Ray process or session file left), and a usage error (exit 2) without Ray."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ouroboros.capabilities.evolve.ray_backend import RayExecutor

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from clikit import run as ouro

EXAMPLES = Path(__file__).parents[2] / "examples" / "flux"


def bowl(candidate: dict[str, float]) -> float:
    return 100 - (candidate["x"] - 3) ** 2 - (candidate["y"] + 1) ** 2


def route_score(candidate: dict[str, dict[str, float]]) -> float:
    w = candidate["weights"]
    return 1 - abs(w["small"] - 0.7)


def without(summary: dict[str, object], *keys: str) -> dict[str, object]:
    return {k: v for k, v in summary.items() if k not in keys}


def test_evolve_params_and_routing_on_ray_match_the_pool(ray_cluster: RayExecutor,
                                                         tmp_path: Path) -> None:
    params = tmp_path / "p.json"
    params.write_text('{"x": 0, "y": {"value": 2, "min": -5, "max": 5}}')
    runs = {}
    for executor in ("process", "ray"):
        r = ouro("evolve", "params", str(params), "--fitness", f"{__name__}:bowl",
                 "--generations", "6", "--population", "16", "--workers", "2", "--seed", "4",
                 "--executor", executor, "--no-submit", "--json", timeout=120)
        assert r.code == 0, r.describe()
        runs[executor] = r.json()
    assert runs["ray"]["executor"] == "ray"
    assert without(runs["ray"], "executor") == without(runs["process"], "executor")
    assert runs["ray"]["after"] > runs["ray"]["before"]
    routes = {}
    for executor in ("process", "ray"):
        r = ouro("evolve", "routing", "--routes", "small,large", "--fitness",
                 f"{__name__}:route_score", "--generations", "5", "--population", "16",
                 "--seed", "2", "--executor", executor, "--no-submit", "--json")
        assert r.code == 0, r.describe()
        routes[executor] = without(r.json(), "executor")
    assert routes["ray"] == routes["process"]


def spinning(candidate: dict[str, float]) -> float:
    while candidate["x"] > 1.5:  # hangs on these candidates, swallowing exceptions
        with contextlib.suppress(Exception):
            time.sleep(0.01)
    return 10 - candidate["x"]


def test_a_hanging_fitness_function_times_out_on_ray(ray_cluster: RayExecutor,
                                                     tmp_path: Path) -> None:
    # the deadline is a SIGALRM timer where the task runs in a worker's main thread (as
    # Ray's workers run tasks) and an asynchronous exception elsewhere: either way a
    # candidate on which the function spins scores 0 instead of holding the run for good
    params = tmp_path / "p.json"
    params.write_text('{"x": {"value": 1, "min": 0, "max": 4}}')
    r = ouro("evolve", "params", str(params), "--fitness", f"{__name__}:spinning",
             "--fitness-timeout", "0.3", "--generations", "3", "--population", "6",
             "--executor", "ray", "--no-submit", "--json", timeout=120)
    assert r.code == 0, r.describe()
    out = r.json()
    assert out["before"] == 9.0 and out["after"] >= 9.0
    assert out["params"]["x"] <= 1.5  # no candidate that hung won


def test_flux_evolve_classic_on_ray_matches_the_pool(ray_cluster: RayExecutor,
                                                     tmp_path: Path) -> None:
    outputs = {}
    for executor in ("process", "ray"):
        best = tmp_path / f"{executor}.fasm"
        r = ouro("flux", "evolve", str(EXAMPLES / "triangle.fasm"), "--tests",
                 str(EXAMPLES / "triangle.tests.json"), "--engine", "classic",
                 "--generations", "6", "--population", "32", "--seed", "3", "--executor",
                 executor, "--no-submit", "--no-plot", "-o", str(best), "--json", timeout=120)
        assert r.code == 0, r.describe()
        outputs[executor] = (without(r.json(), "executor", "output"), best.read_text())
    assert outputs["ray"] == outputs["process"]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Ray's socket paths live under the temp dir and must stay under 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="ot", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_cli_starts_a_private_ray_and_leaves_nothing_behind(short_tmp: Path,
                                                                tmp_path: Path) -> None:
    """A real `ouro` process: its own Ray (not the session's), the search's answer equals
    the pool's, and once it exits no Ray process or session file of it remains."""
    env = {**os.environ, "TMPDIR": str(short_tmp)}
    env.pop("OURO_RAY_ADDRESS", None)
    answers = {}
    for executor in ("process", "ray"):
        best = tmp_path / f"{executor}.fasm"
        done = subprocess.run(
            [sys.executable, "-m", "ouroboros", "flux", "evolve", str(EXAMPLES / "sum2x.fasm"),
             "--tests", str(EXAMPLES / "sum2x.tests.json"), "--budget", "800", "--seed", "1",
             "--executor", executor, "--no-submit", "--no-plot", "-o", str(best), "--json"],
            capture_output=True, text=True, timeout=240, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # quiet: no Ray banner, warning or log line
        answers[executor] = (without(json.loads(done.stdout), "executor", "output"),
                             best.read_text())
    assert answers["ray"] == answers["process"]
    assert list(short_tmp.iterdir()) == []  # the session directory went with Ray
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(short_tmp) not in left  # no raylet, GCS or worker of that Ray still runs


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    for args in (["flux", "evolve", str(EXAMPLES / "sum2x.fasm"), "--tests",
                  str(EXAMPLES / "sum2x.tests.json"), "--no-submit", "--no-plot"],
                 ["evolve", "params", "-", "--fitness", f"{__name__}:bowl", "--no-submit"]):
        r = ouro(*args, "--executor", "ray", "--json", stdin=b'{"x": 1, "y": 1}')
        assert r.code == 2, r.describe()
        error = r.json()["error"]
        assert "needs Ray" in error["message"] and "ouroboros[ray]" in error["hint"]


def test_a_malformed_ray_address_is_a_usage_error() -> None:
    r = ouro("flux", "evolve", str(EXAMPLES / "sum2x.fasm"), "--tests",
             str(EXAMPLES / "sum2x.tests.json"), "--no-submit", "--no-plot",
             "--executor", "ray", "--ray-address", "head;reboot", "--json")
    assert r.code == 2 and "is not auto, HOST:PORT" in r.json()["error"]["message"]
