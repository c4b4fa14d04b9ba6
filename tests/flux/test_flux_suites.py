"""Every FLUX benchmark suite's `optimum` is sound: it verifies, it is the same function
as its `source` (a z3 proof, or differential testing where none is possible, and in
every case the training and held-back inputs), and it costs fewer cycles.

The bench counts a run as "reached" when its winner is as fast as `optimum`, and as
"wrong" when it differs from the source on the held-back inputs; an optimum that were
wrong, or no faster, would make both counts meaningless. The suites are frozen, so a bad
entry in one is marked below with its reason, never edited away.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.flux import equivalence
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import TestCase, score
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import run

DATA = Path(__file__).parents[2] / "bench" / "data"
ALL_SUITES = sorted(DATA.glob("flux_*.toml"))
# OURO_FLUX_SUITES=tuning,tuning2 limits the files read to those suites: a helper who
# tunes the engine must not read the held-out suites, not even at collection.
_ONLY = {s.strip() for s in os.environ.get("OURO_FLUX_SUITES", "").split(",") if s.strip()}
SUITES = [p for p in ALL_SUITES if not _ONLY or p.stem.removeprefix("flux_") in _ONLY]
# Generated inputs when no proof is possible (loops the inputs drive): fewer than the
# 20,000 the suites were written against, to keep this file under a minute; the
# held-back inputs are always run besides.
DIFFERENTIAL_INPUTS = 3000
# "suite:program" -> why that frozen entry is known to be wrong (xfail, strict).
KNOWN_BAD: dict[str, str] = {}


@functools.cache
def suite(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def entries() -> list[Any]:
    params = []
    for path in SUITES:
        for entry in suite(path)["program"]:
            key = f"{path.stem.removeprefix('flux_')}:{entry['name']}"
            marks = [pytest.mark.xfail(reason=KNOWN_BAD[key], strict=True)] \
                if key in KNOWN_BAD else []
            params.append(pytest.param(path, entry["name"], id=key, marks=marks))
    return params


def program(text: str) -> Program:
    image = assemble(text)
    verdict = verify(image)
    assert verdict.ok, verdict.reasons
    return Program.from_image(image)


def outcome(p: Program, inputs: list[int]) -> tuple[object, ...]:
    r = run(p.to_image(), inputs)
    return r.output, r.channels, r.halted, r.trap


def test_every_suite_file_is_found_and_well_formed() -> None:
    names = {p.stem for p in ALL_SUITES}
    assert {"flux_fresh", "flux_fresh2", "flux_fresh3", "flux_fresh4", "flux_fresh5",
            "flux_fresh6", "flux_fresh7", "flux_fresh8", "flux_fresh9", "flux_tuning", "flux_tuning2", "flux_tuning3"} <= names
    for path in SUITES:
        data = suite(path)
        assert data["train_inputs"] and data["program"], path
        programs = [e["name"] for e in data["program"]]
        assert len(programs) == len(set(programs)), f"{path.name}: duplicate names"


@pytest.mark.parametrize(("path", "name"), entries())
def test_optimum_is_equivalent_to_its_source_and_cheaper(path: Path, name: str) -> None:
    data = suite(path)
    entry = next(e for e in data["program"] if e["name"] == name)
    source, optimum = program(entry["source"]), program(entry["optimum"])

    verdict = equivalence.check(source, optimum, count=DIFFERENTIAL_INPUTS)
    assert verdict.equivalent, f"{verdict.detail} on input {verdict.counterexample}"
    # The bench's own criterion for "wrong", on the reference interpreter.
    for inputs in data["train_inputs"] + data["held_back_inputs"]:
        assert outcome(optimum, inputs) == outcome(source, inputs), inputs

    cases = tuple(TestCase.from_run(i, run(source.to_image(), i))
                  for i in data["train_inputs"])
    before, after = score(source, cases), score(optimum, cases)
    assert before.confidence == 1.0, "the source must halt on every training input"
    assert after.confidence == 1.0
    assert after.cycles_per_result < before.cycles_per_result, \
        f"optimum {after.cycles_per_result} cycles, source {before.cycles_per_result}"
    assert after.penalised_cycles < before.penalised_cycles, \
        f"optimum {after.penalised_cycles} penalised, source {before.penalised_cycles}"
