"""bench/flux.py loads every frozen held-out suite, records each file's hash, and refuses
a `--suites` name it would not run (a typo there once meant a measurement of nothing,
written out as if it were a result). Nothing here runs a search."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from benchkit import load_bench

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "flux.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("flux", "bench_flux")


def run_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120, check=False)


def test_fresh4_is_a_held_out_suite_with_its_hash_recorded(bench: ModuleType) -> None:
    path = ROOT / "bench" / "data" / "flux_fresh4.toml"
    assert bench.HELD_OUT["fresh4"] == path
    programs, train, held = bench.load_suite(path)
    data = tomllib.loads(path.read_text())
    assert [p["name"] for p in programs] == [p["name"] for p in data["program"]]
    assert len(programs) == 27 and train and held
    hashes = bench.held_out_hashes()
    assert hashes["fresh4_suite_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(hashes) == {f"{n}_suite_sha256"
                           for n in ("fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6",
                                     "fresh7", "fresh8", "fresh9", "fresh10")}


# Programs per later fresh suite (fresh8 has a fourth counted loop, fresh10 a fourth
# constant-folding program).
SIZES = {"fresh5": 27, "fresh6": 27, "fresh7": 27, "fresh8": 28, "fresh9": 27, "fresh10": 28}


@pytest.mark.parametrize("name", ["fresh5", "fresh6", "fresh7", "fresh8", "fresh9", "fresh10"])
def test_a_later_fresh_suite_is_held_out_with_its_hash_recorded(bench: ModuleType,
                                                                name: str) -> None:
    path = ROOT / "bench" / "data" / f"flux_{name}.toml"
    assert bench.HELD_OUT[name] == path
    programs, train, held = bench.load_suite(path)
    data = tomllib.loads(path.read_text())
    assert [p["name"] for p in programs] == [p["name"] for p in data["program"]]
    assert len(programs) == SIZES[name] and train and held
    assert bench.held_out_hashes([name]) == {
        f"{name}_suite_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_the_held_out_suites_are_listed_in_the_order_they_were_frozen(
        bench: ModuleType) -> None:
    assert list(bench.HELD_OUT)[-6:] == ["fresh5", "fresh6", "fresh7", "fresh8", "fresh9",
                                         "fresh10"]


@pytest.mark.parametrize("name", ["fresh6", "fresh7", "fresh8", "fresh9", "fresh10"])
def test_suites_fresh_n_loads_it_and_records_its_hash_without_running_a_method(
    tmp_path: Path, name: str,
) -> None:
    """`--methods none`: the suite is loaded and scored (source and optimum cycles), and
    no search, random search or peephole pass runs on it."""
    out = tmp_path / "flux.json"
    done = run_bench("--only", "heldout", "--suites", name, "--methods", "none",
                     "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    results = json.loads(out.read_text())
    path = ROOT / "bench" / "data" / f"flux_{name}.toml"
    assert results[f"{name}_suite_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not [k for k in results if k.endswith("_suite_sha256") and k != f"{name}_suite_sha256"]
    suite = results[f"suite_{name}"]
    assert suite["summary"]["programs"] == SIZES[name] and suite["summary"]["per_method"] == {}
    assert all(row["optimum"] < row["before"] for row in suite["rows"])


def test_help_names_fresh9_and_fresh10(tmp_path: Path) -> None:
    done = run_bench("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    # Both the --only heldout and the --suites help list it.
    assert text.count("fresh5, fresh6, fresh7, fresh8, fresh9, fresh10)") == 2, text


@pytest.mark.parametrize(("only", "suites", "unknown"), [
    ("heldout", "fresh_5", "fresh_5"),  # a typo
    ("suites", "fresh4", "fresh4"),  # a real suite that --only suites does not run
])
def test_a_suite_name_that_would_select_nothing_is_refused_before_anything_runs(
    tmp_path: Path, only: str, suites: str, unknown: str
) -> None:
    out = tmp_path / "flux.json"
    # No method either: were the check missing, this would still measure nothing.
    done = run_bench("--only", only, "--suites", suites, "--methods", "none", "--out", str(out),
                     cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--suites: no suite '{unknown}' under --only {only}" in done.stderr
    assert not out.exists()
