"""Programs and routing weights as patches: the verifier audits, the test cases gate."""

from __future__ import annotations

from pathlib import Path

from ouroboros.capabilities.evolve.governance import submit_routing, tune_routing
from ouroboros.capabilities.evolve.vector import EXAMPLE_ROUTES, example_fitness
from ouroboros.capabilities.flux import governance
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import TestCase
from ouroboros.kernel import Runtime

DOUBLE = assemble("SENSE 0\nDUP\nADD\nACT 0\nHALT\n")
CASES = (TestCase((2,), (4,)), TestCase((-3,), (-6,)))


def kinds(rt: Runtime) -> list[str]:
    return [e.kind for e in rt.log()]


def test_a_passing_verified_program_is_applied(rt: Runtime) -> None:
    value = governance.bytecode_value(DOUBLE, CASES, metadata={"name": "double"})
    outcome = governance.submit_program(rt, "flux/programs/double", value, "first version")
    assert outcome.status == "applied", outcome.reason
    stored = rt.value("flux/programs/double")
    assert stored["hex"] == DOUBLE.to_hex()
    assert assemble(stored["assembly"]) == DOUBLE


def test_failing_test_cases_reject_at_the_test_gate(rt: Runtime) -> None:
    value = governance.bytecode_value(DOUBLE, (TestCase((2,), (5,)),))
    outcome = governance.submit_program(rt, "flux/programs/double", value, "wrong")
    assert (outcome.status, outcome.stage) == ("rejected", "test")
    assert "case 1: expected [5], got output [4]" in outcome.reason
    assert rt.value("flux/programs/double") is None


def test_the_verifier_is_the_audit(rt: Runtime) -> None:
    sloppy = assemble("SENSE 0\nJZ skip\nPUSH 7\nskip: SENSE 0\nACT 0\nHALT\n")
    value = governance.bytecode_value(sloppy, (TestCase((5,), (5,)),))
    outcome = governance.submit_program(rt, "flux/programs/sloppy", value, "passes, unsafe")
    assert (outcome.status, outcome.stage) == ("rejected", "audit")
    assert "inconsistent stack depth" in outcome.reason


def test_assembly_must_match_the_image(rt: Runtime) -> None:
    value = governance.bytecode_value(DOUBLE, CASES)
    value["assembly"] = "SENSE 0\nACT 0\nHALT\n"
    outcome = governance.submit_program(rt, "flux/programs/double", value, "mismatch")
    assert outcome.stage == "audit"
    assert "does not assemble to the image" in outcome.reason


def test_malformed_values_fail_the_schema(rt: Runtime) -> None:
    outcome = governance.submit_program(rt, "flux/programs/x", {"hex": "zz", "tests": []}, "bad")
    assert outcome.status == "rejected"
    assert rt.value("flux/programs/x") is None


def test_generation_summaries_are_ledger_events(rt: Runtime) -> None:
    governance.record_generation(rt, "flux/programs/double", {"generation": 1, "accepted": True})
    events = [e for e in rt.log() if e.kind == "EvolutionGeneration"]
    assert len(events) == 1
    assert events[0].payload["target"] == "flux/programs/double"


def test_tuned_routing_weights_become_a_routing_patch(rt: Runtime) -> None:
    weights, fitness, history = tune_routing(EXAMPLE_ROUTES, example_fitness, generations=30,
                                             seed=3)
    assert abs(sum(weights.values()) - 1.0) < 1e-5
    assert max(weights, key=lambda k: weights[k]) == "medium"
    outcome = submit_routing(rt, "routing/models", weights, fitness, "tuned")
    assert outcome.status == "applied", outcome.reason
    assert rt.value("routing/models")["weights"] == weights
    assert any(r.accepted for r in history)


def test_64_bit_test_values_travel_as_strings(rt: Runtime) -> None:
    big = (1 << 62) + 1
    value = governance.bytecode_value(DOUBLE, (TestCase((big,), (-(1 << 63) + 2,)),))
    assert value["tests"] == [{"input": [str(big)], "output": [str(-(1 << 63) + 2)]}]
    outcome = governance.submit_program(rt, "flux/programs/big", value, "wide values")
    assert outcome.status == "applied", outcome.reason


def test_the_kernel_cli_knows_the_bytecode_type(tmp_path: Path) -> None:
    import ouroboros.interfaces.cli.main  # noqa: F401  (mounts the capabilities)
    from ouroboros.interfaces.cli.output import CAPABILITY_REGISTRARS, open_runtime

    assert "ouroboros.capabilities.flux" in CAPABILITY_REGISTRARS
    Runtime.init(tmp_path / "ws").close()
    with open_runtime(tmp_path / "ws") as rt:
        assert rt.registry.get("bytecode") is not None
        assert "flux.cases" in rt.registry.tests
