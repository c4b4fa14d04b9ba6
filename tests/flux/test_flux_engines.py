"""The fast engines agree with the reference interpreter, result for result."""

from __future__ import annotations

import pytest
from flux_strategies import inputs, verified_programs
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.compiled import compile_program, run_compiled
from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import run
from ouroboros.capabilities.flux.wasm import WasmRunner, translate

RUNNER = WasmRunner()


@settings(max_examples=60, deadline=None)
@given(verified_programs(), inputs, st.integers(1, 400))
def test_fast_and_wasm_agree_with_reference(program: Program, values: list[int], fuel: int) -> None:
    image = program.to_image()
    verdict = verify(image)
    expected = run(image, values, fuel=fuel)
    decoded = predecode(image.params, verdict.instructions)
    assert run_predecoded(decoded, values, fuel=fuel) == expected
    assert run_compiled(decoded, values, fuel=fuel) == expected
    assert RUNNER.run(image, values, fuel=fuel) == expected


@pytest.mark.parametrize("source", [
    "SENSE 0\nSENSE 1\nDIV\nACT 0\nHALT",
    "SENSE 0\nSENSE 1\nMOD\nACT 0\nHALT",
    "SENSE 0\nl: DEC\nDUP\nJNZ l\nACT 0\nHALT",
])
@pytest.mark.parametrize("values", [[7, 0], [-(1 << 63), -1], [5, 3], [100000, 2]])
def test_traps_agree(source: str, values: list[int]) -> None:
    image = assemble(source)
    expected = run(image, values, fuel=5000)
    assert RUNNER.run(image, values, fuel=5000) == expected
    assert run_predecoded(predecode(image.params, verify(image).instructions), values, fuel=5000) == expected
    assert run_compiled(predecode(image.params, verify(image).instructions), values,
                        fuel=5000) == expected


def test_many_outputs_grow_wasm_memory() -> None:
    image = assemble("PUSH 6000\nl: DUP\nACT 1\nDEC\nDUP\nJNZ l\nPOP\nHALT")
    expected = run(image, fuel=10**6)
    assert len(expected.output) == 6000
    assert RUNNER.run(image, fuel=10**6) == expected


def test_unverified_programs_are_not_translated() -> None:
    with pytest.raises(ValueError, match="unverified"):
        translate(assemble("ADD\nHALT"))


def test_programs_with_calls_are_left_to_the_dispatch_loop() -> None:
    image = assemble("PUSH 2\nCALL f\nACT 0\nHALT\nf: INC\nRET")
    decoded = predecode(image.params, verify(image).instructions)
    assert compile_program(decoded) is None
    assert run_compiled(decoded, fuel=100) == run(image, fuel=100)
