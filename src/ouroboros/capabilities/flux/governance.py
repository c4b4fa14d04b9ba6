"""FLUX under the kernel: the `bytecode` patch type, its test gate and its audit.

An accepted program is data in the ledger: its image (hex), assembly, test cases and
the fitness the evolver measured. The *audit* is the verifier (a program that does not
verify is rejected whatever its tests say); the *test gate* `flux.cases` re-runs the
program's own test cases and needs every one to pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.fitness import Score, TestCase, TestsFileError, parse_tests
from ouroboros.capabilities.flux.isa import DecodeError, Image
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import run
from ouroboros.kernel import PatchType, Runtime, SubmitOutcome, TestContext, TestOutcome

PATCH_TYPE = "bytecode"
JSON_SAFE = 2**53 - 1  # ledger values are RFC 8785 JSON: larger ints travel as strings
CASES_TEST = "flux.cases"

BYTECODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["hex", "tests"],
    "additionalProperties": False,
    "properties": {
        "hex": {"type": "string", "pattern": "^464c5558([0-9a-f]{2})+$"},
        "assembly": {"type": "string"},
        "tests": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "required": ["input", "output"], "additionalProperties": False,
                "properties": {"input": {"type": "array", "items": {"$ref": "#/$defs/int64"}},
                               "output": {"type": "array", "items": {"$ref": "#/$defs/int64"}}},
            },
        },
        "fitness": {"type": "number", "minimum": 0},
        "cycles_per_result": {"type": "number", "minimum": 0},
        "metadata": {"type": "object"},
    },
    "$defs": {"int64": {"oneOf": [
        {"type": "integer", "minimum": -JSON_SAFE, "maximum": JSON_SAFE},
        {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    ]}},
}


def image_of(value: Mapping[str, Any]) -> Image:
    return Image.from_bytes(bytes.fromhex(str(value["hex"])))


def audit_reasons(value: Mapping[str, Any]) -> list[str]:
    """The verifier as an audit: every reason the program is unsafe (empty = pass)."""
    try:
        image = image_of(value)
    except (DecodeError, ValueError) as exc:
        return [f"bytecode: {exc}"]
    reasons = [f"bytecode: {r}" for r in verify(image).reasons]
    if "assembly" in value:
        try:
            if assemble(str(value["assembly"])) != image:
                reasons.append("bytecode: the assembly does not assemble to the image")
        except AssemblyError as exc:
            reasons.append(f"bytecode: assembly {exc}")
    return reasons


def check_cases(value: Mapping[str, Any]) -> tuple[bool, str]:
    """Run the value's own test cases on its image; all must pass."""
    try:
        image = image_of(value)
        cases = parse_tests_value(value["tests"])
    except (DecodeError, ValueError, TestsFileError, KeyError) as exc:
        return False, str(exc)
    failed = []
    for n, case in enumerate(cases, start=1):
        result = run(image, case.inputs)
        if not result.halted or result.output != case.output:
            got = f"trap {result.trap}" if result.trap else f"output {list(result.output)}"
            failed.append(f"case {n}: expected {list(case.output)}, got {got}")
    if failed:
        return False, f"{len(failed)}/{len(cases)} cases failed: " + "; ".join(failed[:3])
    return True, f"{len(cases)}/{len(cases)} cases passed"


def _to_json_int(value: int) -> int | str:
    return value if -JSON_SAFE <= value <= JSON_SAFE else str(value)


def _from_json_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def parse_tests_value(raw: Any) -> tuple[TestCase, ...]:
    """Test cases from a patch value (64-bit values beyond 2^53 are decimal strings)."""
    if isinstance(raw, list):
        raw = [{k: [_from_json_int(v) for v in vs] if isinstance(vs, list) else vs
                for k, vs in case.items()} if isinstance(case, dict) else case for case in raw]
    return parse_tests(json.dumps(raw))


def bytecode_value(image: Image, cases: Sequence[TestCase], score: Score | None = None,
                   metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "hex": image.to_hex(),
        "assembly": disassemble(image),
        "tests": [{"input": [_to_json_int(v) for v in c.inputs],
                   "output": [_to_json_int(v) for v in c.output]} for c in cases],
    }
    if score is not None:
        value["fitness"] = score.fitness
        value["cycles_per_result"] = score.cycles_per_result
    if metadata:
        value["metadata"] = dict(metadata)
    return value


def _audit(ctx: TestContext) -> list[str]:
    return audit_reasons(ctx.new_value) if ctx.new_value is not None else []


def _cases_test(ctx: TestContext) -> TestOutcome:
    if ctx.new_value is None:
        return TestOutcome(True, "program removed: nothing to run")
    ok, detail = check_cases(ctx.new_value)
    return TestOutcome(ok=ok, detail=detail)


def register(rt: Runtime) -> None:
    """Register the `bytecode` patch type and the `flux.cases` test (idempotent)."""
    audit, cases_test = _audit, _cases_test

    rt.registry.register_type(PatchType(
        name=PATCH_TYPE, value_schema=BYTECODE_SCHEMA,
        default_tests=("schema", "roundtrip", "replay", CASES_TEST), audit=audit,
        description="a FLUX program: image, assembly, test cases, measured fitness",
    ))
    rt.registry.register_test(CASES_TEST, cases_test)


def submit_program(rt: Runtime, target: str, value: Mapping[str, Any],
                   reasoning: str) -> SubmitOutcome:
    """Propose the program as a `bytecode` patch; returns the kernel's SubmitOutcome."""
    register(rt)
    return rt.propose_and_submit(
        type=PATCH_TYPE, target=target, value=dict(value), reasoning=reasoning,
        tests=[CASES_TEST], author="flux", keys=["runtime"],
    )


def record_generation(rt: Runtime, target: str, summary: Mapping[str, Any]) -> None:
    """One ledger event per accepted generation (never one per candidate)."""
    rt.record("EvolutionGeneration", {"target": target, **summary})
