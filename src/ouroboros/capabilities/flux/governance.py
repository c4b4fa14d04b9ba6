"""FLUX under the kernel: the `bytecode` patch types, their test gate and their audit.

An accepted program is data in the ledger: its image (hex), assembly, test cases and
the fitness the evolver measured. The *audit* is the verifier (a program that does not
verify is rejected whatever its tests say).

The *test gate* `flux.cases` cannot be gamed by the patch it judges:
- a target's test cases accumulate: the new value must carry every case the incumbent
  carries (adding cases is an ordinary patch; removing one needs the root-only
  `bytecode_redefine` type);
- the program must pass that whole suite, output channels included where a case names
  them, not only the cases the patch added;
- it must be *equivalent* to the incumbent program (`equivalence.check`: an SMT proof,
  or a large generated input set with extremes), so a shortcut that fits the suite and
  breaks elsewhere is refused with the input that shows it; when the incumbent is within
  the prover's bounds, only a proof will do (a candidate that leaves them, say by adding
  a loop, could hide a backdoor on one input that no generated input meets);
- it must not be slower on the suite (penalised cycles per result) unless the patch's
  reasoning says why, in a line starting with `regression:`.
A `bytecode_redefine` patch (root only) changes what a program computes or prunes its
tests; its gate `flux.own_cases` runs the cases it carries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ouroboros.capabilities.flux import equivalence
from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.fitness import (
    Score,
    TestCase,
    TestsFileError,
    parse_tests,
    score,
)
from ouroboros.capabilities.flux.isa import DEFAULT_FUEL, DecodeError, Image
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import RunResult, run
from ouroboros.kernel import PatchType, Runtime, SubmitOutcome, TestContext, TestOutcome

PATCH_TYPE = "bytecode"
REDEFINE_TYPE = "bytecode_redefine"
OWN_CASES_TEST = "flux.own_cases"
REGRESSION_MARKER = "regression:"
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
                               "output": {"type": "array", "items": {"$ref": "#/$defs/int64"}},
                               "channels": {"type": "array", "items": {
                                   "type": "integer", "minimum": 0, "maximum": 255}}},
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
    run_case = _case_runner(image)
    for n, case in enumerate(cases, start=1):
        result = run_case(case.inputs)
        if not case.passed_by(result):
            got = f"trap {result.trap}" if result.trap else f"output {list(result.output)}"
            if case.channels is not None and result.output == case.output and result.halted:
                got = f"channels {list(result.channels)}"
            want = list(case.output) if case.channels is None else \
                f"{list(case.output)} on channels {list(case.channels)}"
            failed.append(f"case {n}: expected {want}, got {got}")
    if failed:
        return False, f"{len(failed)}/{len(cases)} cases failed: " + "; ".join(failed[:3])
    return True, f"{len(cases)}/{len(cases)} cases passed"


def _case_runner(image: Image) -> Callable[[Sequence[int]], RunResult]:
    """The native engine for a verified image (the engines agree on those; 1,000 cases
    of a loop near the fuel bound took the reference interpreter a minute of the gate's
    time, wasm a tenth of a second), the reference interpreter for any other."""
    if not verify(image).ok:
        return lambda inputs: run(image, inputs)
    from ouroboros.capabilities.flux.wasm import WasmRunner

    compiled = WasmRunner(cache_size=1).compile(image)
    return lambda inputs: compiled.run(inputs, DEFAULT_FUEL)


def check_against_incumbent(old: Mapping[str, Any], new: Mapping[str, Any],
                            reasoning: str) -> tuple[bool, str]:
    """The gate's checks against the program in place (see the module docstring)."""
    try:
        old_cases = parse_tests_value(old["tests"])
        new_cases = parse_tests_value(new["tests"])
        old_program = Program.from_image(image_of(old))
        new_program = Program.from_image(image_of(new))
    except (DecodeError, ValueError, TestsFileError, KeyError) as exc:
        return False, str(exc)
    carried = set(new_cases)
    dropped = [c for c in old_cases if c not in carried]
    if dropped:
        return False, (f"drops {len(dropped)} of the target's {len(old_cases)} test cases "
                       f"(first: input {list(dropped[0].inputs)}); removing tests needs a "
                       f"root-signed {REDEFINE_TYPE} patch")
    ok, detail = check_cases(new)
    if not ok:
        return False, f"the target's suite: {detail}"
    verdict_new = verify(image_of(new))
    if not verdict_new.ok:  # the equivalence check executes verified programs only
        return False, "the program does not verify: " + "; ".join(verdict_new.reasons[:3])
    spec = equivalence.SymbolicSpec(old_program,
                                    equivalence.input_count(old_program, new_program))
    verdict = equivalence.check(old_program, new_program, spec=spec)
    if verdict.counterexample is not None:
        return False, (f"not equivalent to the incumbent program: on input "
                       f"{list(verdict.counterexample)} ({verdict.detail or 'outputs differ'})")
    if verdict.status != "proved" and spec.paths is not None:
        # The incumbent is within the prover's bounds: a candidate that is not (a loop
        # added, paths or a query the solver cannot finish) would be judged on generated
        # inputs only, which a backdoor keyed on one 64-bit value never meets.
        return False, (f"not proved equivalent to the incumbent program ({verdict.detail}): "
                       f"the incumbent is provable, so its replacement must be too; a "
                       f"root-signed {REDEFINE_TYPE} patch can change it otherwise")
    before = score(old_program, new_cases).penalised_cycles
    after = score(new_program, new_cases).penalised_cycles
    if after > before + 1e-9 and not any(line.strip().lower().startswith(REGRESSION_MARKER)
                                         for line in reasoning.splitlines()):
        return False, (f"fitness regression: {before:g} -> {after:g} penalised cycles per "
                       f"result on the target's suite; say why in a line of the reason "
                       f"starting with '{REGRESSION_MARKER}'")
    how = "proved" if verdict.status == "proved" else f"tested ({verdict.detail})"
    return True, (f"{len(new_cases)} cases passed; equivalent to the incumbent: {how}; "
                  f"{before:g} -> {after:g} penalised cycles per result")


def _to_json_int(value: int) -> int | str:
    return value if -JSON_SAFE <= value <= JSON_SAFE else str(value)


def _case_json(case: TestCase) -> dict[str, list[int | str]]:
    out: dict[str, list[int | str]] = {"input": [_to_json_int(v) for v in case.inputs],
                                       "output": [_to_json_int(v) for v in case.output]}
    if case.channels is not None:
        out["channels"] = list(case.channels)
    return out


def merge_cases(*suites: Sequence[TestCase]) -> tuple[TestCase, ...]:
    """The union of test suites, in first-seen order (the ledger's cases first)."""
    return tuple(dict.fromkeys(c for suite in suites for c in suite))


def target_cases(rt: Runtime, target: str) -> tuple[TestCase, ...]:
    """The test cases the target's current program carries (empty if there is none)."""
    value = rt.value(target)
    if not isinstance(value, dict) or "tests" not in value:
        return ()
    return parse_tests_value(value["tests"])


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
        "tests": [_case_json(c) for c in cases],
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
        return TestOutcome(False, "removing a program and its tests needs a root-signed "
                                  f"{REDEFINE_TYPE} patch")
    if ctx.old_value is None:
        ok, detail = check_cases(ctx.new_value)
    else:
        ok, detail = check_against_incumbent(ctx.old_value, ctx.new_value,
                                             ctx.patch.reasoning)
    return TestOutcome(ok=ok, detail=detail)


def _own_cases_test(ctx: TestContext) -> TestOutcome:
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
    rt.registry.register_type(PatchType(
        name=REDEFINE_TYPE, value_schema=BYTECODE_SCHEMA,
        default_tests=("schema", "roundtrip", "replay", OWN_CASES_TEST), audit=audit,
        root_only=True, kind=PATCH_TYPE,
        description="root only: change what a FLUX program computes, or prune its tests",
    ))
    rt.registry.register_test(OWN_CASES_TEST, _own_cases_test)


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
