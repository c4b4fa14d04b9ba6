"""The `ouro flux` contract: outputs, --json shapes, exit codes, errors with line numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.examples import SUM2X_SOURCE, SUM2X_TESTS
from ouroboros.kernel import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flux"


def ouro(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", "flux", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_examples_match_the_built_in_copies() -> None:
    assert (EXAMPLES / "sum2x.fasm").read_text() == SUM2X_SOURCE
    assert (EXAMPLES / "sum2x.tests.json").read_text() == SUM2X_TESTS


def test_asm_prints_hex_or_writes_the_image(tmp_path: Path) -> None:
    r = ouro("asm", str(EXAMPLES / "sum2x.fasm"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == assemble(SUM2X_SOURCE).to_hex()
    out = tmp_path / "sum2x.bin"
    assert ouro("asm", str(EXAMPLES / "sum2x.fasm"), "-o", str(out)).returncode == 0
    assert out.read_bytes() == assemble(SUM2X_SOURCE).to_bytes()
    r = ouro("run", str(out), "--input", "3,4", "--json")  # images run too
    assert json.loads(r.stdout)["output"] == [11]


def test_run_json_is_exactly_the_contract() -> None:
    r = ouro("run", str(EXAMPLES / "sum2x.fasm"), "--input", "3,4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"output": [11], "cycles": 19, "halted": True, "trap": None}


@pytest.mark.parametrize("engine", ["reference", "fast", "wasm"])
def test_every_engine_gives_the_same_result(engine: str) -> None:
    r = ouro("run", str(EXAMPLES / "triangle.fasm"), "--input", "10", "--json", "--engine", engine)
    assert json.loads(r.stdout) == {"output": [55], "cycles": 226, "halted": True, "trap": None}


def test_a_trap_is_a_result_with_exit_1(tmp_path: Path) -> None:
    src = write(tmp_path, "div.fasm", "SENSE 0\nSENSE 1\nDIV\nACT 0\nHALT\n")
    r = ouro("run", str(src), "--input", "1,0", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"output": [], "cycles": 12, "halted": False,
                                    "trap": "division_by_zero"}


def test_verify_lists_every_reason(tmp_path: Path) -> None:
    assert ouro("verify", str(EXAMPLES / "triangle.fasm")).returncode == 0
    src = write(tmp_path, "bad.fasm", "LOAD 20\nADD\nl: JMP l\n")
    r = ouro("verify", str(src))
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    assert "memory slot 20" in lines[0]
    r = ouro("verify", str(src), "--json")
    assert json.loads(r.stdout)["ok"] is False and len(json.loads(r.stdout)["reasons"]) == 3


@pytest.mark.parametrize(("source", "message"), [
    ("NOP\nBOGUS\n", "bad.fasm:2: unknown mnemonic 'BOGUS'"),
    ("PUSH\nHALT\n", "bad.fasm:1: PUSH is missing an operand"),
    ("HALT\nJZ out\n", "bad.fasm:2: undefined label 'out'"),
    ("PUSH 1\n" * 900, "bad.fasm:820: program exceeds the size bound of 4096 bytes"),
])
@pytest.mark.parametrize("command", ["asm", "verify", "run"])
def test_bad_source_names_the_line(tmp_path: Path, source: str, message: str, command: str) -> None:
    r = ouro(command, str(write(tmp_path, "bad.fasm", source)))
    assert r.returncode == 1
    assert message in r.stderr
    assert r.stdout == ""


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert ouro("run", str(tmp_path / "missing.fasm")).returncode == 2
    r = ouro("run", str(EXAMPLES / "sum2x.fasm"), "--input", "3,x")
    assert r.returncode == 2 and "comma-separated integers" in r.stderr


def test_evolve_without_submitting(tmp_path: Path) -> None:
    out = tmp_path / "best.fasm"
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--generations", "30", "--seed", "4", "-o", str(out), "--no-submit", "--json",
             "--workers", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["before"]["cycles_per_result"] == 19
    assert summary["after"]["cycles_per_result"] < 19
    assert summary["after"]["confidence"] == 1.0
    assert summary["patch"] is None
    assert assemble(out.read_text())  # the best program, as assembly
    assert (tmp_path / "best.trend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evolve_submits_the_winner_and_logs_one_event_per_accepted_generation(
        tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--generations", "20", "-o", str(tmp_path / "b.fasm"), "--home", str(home), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["patch"]["status"] == "applied"
    with Runtime.open(home) as rt:
        value = rt.value("flux/programs/sum2x")
        generations = [e for e in rt.log() if e.kind == "EvolutionGeneration"]
    assert value["cycles_per_result"] == summary["after"]["cycles_per_result"]
    assert len(generations) == summary["accepted"]


def test_evolve_exit_3_when_the_kernel_rejects(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    tests = write(tmp_path, "t.json", '[{"input": [1, 2], "output": [5]}, {"input": [0, 0], "output": [1]}]')
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(tests), "--generations", "3",
             "-o", str(tmp_path / "b.fasm"), "--home", str(home), "--json", "--engine", "classic")
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["patch"]["stage"] == "test"


def test_search_refuses_a_program_that_fails_its_own_tests(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    tests = write(tmp_path, "t.json", '[{"input": [1, 2], "output": [5]}, {"input": [0, 0], "output": [1]}]')
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(tests), "--budget", "50",
             "-o", str(tmp_path / "b.fasm"), "--home", str(home))
    assert r.returncode == 2 and "fails 1 of its 2 test cases" in r.stderr
    assert not (tmp_path / "b.fasm").exists()
    with Runtime.open(home) as rt:
        assert [e.kind for e in rt.log()] == ["Genesis"]


def test_search_proves_the_winner_and_submits_the_grown_suite(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--budget", "600", "--seed", "1", "-o", str(tmp_path / "b.fasm"), "--home", str(home),
             "--json", "--executor", "local")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["engine"] == "search" and summary["evaluations"] <= 600
    assert summary["after"]["cycles_per_result"] < summary["before"]["cycles_per_result"]
    assert summary["equivalence"]["status"] == "proved"
    assert summary["patch"]["status"] == "applied"
    # Lifting and finishing are reported beside the evaluations they are part of.
    assert summary["lifts"] >= 1 and 1 <= summary["finish_evaluations"] <= 600
    assert sum(summary["improved_by"].values()) >= 1
    with Runtime.open(home) as rt:
        stored = rt.value("flux/programs/sum2x")
        events = [e for e in rt.log() if e.kind == "EvolutionGeneration"]
    assert len(stored["tests"]) == summary["tests"] >= 1
    assert len(events) == summary["accepted"] >= 1


@pytest.mark.parametrize(("tests", "message"), [
    ("[1, 2", "line 1: invalid JSON"),
    ('[{"input": "3"}]', "case 1"),
    # a reviewer reads input [1]; json.loads kept the last, [2]
    ('[{"input": [1], "output": [2], "input": [2]}]', 'duplicate key "input"'),
    ("[" * 100_000, "maximum recursion depth"),
])
def test_evolve_refuses_malformed_tests_and_submits_nothing(tmp_path: Path, tests: str,
                                                            message: str) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    with Runtime.open(home) as rt:
        before = len(rt.log())
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(write(tmp_path, "t.json", tests)),
             "-o", str(tmp_path / "b.fasm"), "--home", str(home))
    assert r.returncode == 2
    assert message in r.stderr
    assert not (tmp_path / "b.fasm").exists()
    with Runtime.open(home) as rt:
        assert len(rt.log()) == before


def test_evolve_needs_a_workspace_unless_told_not_to_submit(tmp_path: Path) -> None:
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--home", str(tmp_path / "nowhere"), "-o", str(tmp_path / "b.fasm"))
    assert r.returncode == 2
    assert "no Ouroboros workspace" in r.stderr and "ouro init" in r.stderr
    assert not (tmp_path / "b.fasm").exists()


def test_evolve_exit_4_when_bytecode_needs_approval(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        gates = rt.value("kernel/gates")
        gates["approval"].append({"types": ["bytecode"], "targets": ["*"]})
        patch = rt.propose("gates", "kernel/gates", value=gates, reasoning="review programs",
                           author="operator")
        assert rt.submit(rt.sign(patch, "root")).status == "applied"
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--generations", "3", "-o", str(tmp_path / "b.fasm"), "--home", str(home), "--json")
    assert r.returncode == 4, r.stderr
    assert json.loads(r.stdout)["patch"]["status"] == "pending"


def test_run_demo_narrates_the_loop(tmp_path: Path) -> None:
    from ouroboros.interfaces.cli.flux import run_demo

    lines: list[str] = []
    with Runtime.init(tmp_path / "ws") as rt:
        run_demo(rt, lines.append)
        assert rt.value("flux/programs/sum2x")["cycles_per_result"] == 10
        assert rt.value("routing/models")["weights"]["medium"] > 0.9
        assert rt.value("flux/programs/sloppy") is None
    text = "\n".join(lines)
    assert "submitted as a bytecode patch: applied" in text
    assert "rejected at the audit gate" in text
    assert "routing patch applied" in text


def test_out_of_range_inputs_and_unwritable_outputs_are_usage_errors(tmp_path: Path) -> None:
    r = ouro("run", str(EXAMPLES / "sum2x.fasm"), "--input", str(1 << 64))
    assert r.returncode == 2 and "64 bits" in r.stderr
    r = ouro("asm", str(EXAMPLES / "sum2x.fasm"), "-o", str(tmp_path / "no" / "x.bin"))
    assert r.returncode == 2 and "cannot write" in r.stderr
    r = ouro("evolve", str(EXAMPLES / "sum2x.fasm"), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "-o", str(tmp_path / "no" / "b.fasm"), "--no-submit")
    assert r.returncode == 2 and "no directory" in r.stderr


def test_disasm_prints_canonical_assembly(tmp_path: Path) -> None:
    r = ouro("disasm", str(EXAMPLES / "reflex.fasm"))
    assert r.returncode == 0
    assert r.stdout.startswith(".param p0 900\n.param p1 50\n")
    assert assemble(r.stdout) == assemble((EXAMPLES / "reflex.fasm").read_text())


def test_an_oversized_image_is_refused_quickly_in_one_line(tmp_path: Path) -> None:
    # 4 MiB of code (the file cap) used to take verify 20 s and 3.6 GB decoding and
    # analysing every byte; the size bound (4096) is now checked before any decoding.
    image = tmp_path / "big.bin"
    image.write_bytes(b"FLUX\x01\x00" + b"\x00" * ((4 << 20) - 10))
    for command in ("verify", "disasm", "run"):
        r = ouro(command, str(image))
        assert r.returncode == 1, (command, r.stderr)
        assert "the size bound is 4096" in r.stderr
        assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    from ouroboros.capabilities.flux.isa import Image
    from ouroboros.capabilities.flux.verifier import verify
    verdict = verify(Image(b"\x00" * (4 << 20)))
    assert not verdict.ok and verdict.reasons == ("program is 4194304 bytes; the size bound is 4096",)


def test_run_a_jump_into_the_middle_of_an_instruction_traps(tmp_path: Path) -> None:
    # `JMP 1` lands inside itself: the reference engine reports bad_opcode/bad_jump as a
    # trap (exit 1); it was "unexpected error: ValueError" from counting the inputs.
    r = ouro("run", str(write(tmp_path, "mid.fasm", "JMP 1\nHALT\n")), "--json")
    assert r.returncode == 1, r.stderr
    assert "unexpected" not in r.stderr
    assert json.loads(r.stdout)["trap"] == "bad_opcode"  # 0x01 (PUSH) with 2 bytes left


def test_instinct_counts_as_reading_an_input(tmp_path: Path) -> None:
    # INSTINCT n emits input n: a missing input must be refused like one SENSE reads.
    r = ouro("run", str(write(tmp_path, "reflex.fasm", "INSTINCT 2\nHALT\n")), "--input", "1")
    assert r.returncode == 2 and "reads 3 input(s)" in r.stderr
    r = ouro("run", str(write(tmp_path, "reflex.fasm", "INSTINCT 2\nHALT\n")), "--input", "1,2,9")
    assert r.returncode == 0 and "output: [9]" in r.stdout


@pytest.mark.parametrize(("source", "message"), [
    (",\nHALT\n", "bad.fasm:1: a line of only separators"),
    ("PUSH \u09ea\nHALT\n", "bad.fasm:1: PUSH operand '\u09ea' must be an integer"),
    ("PUSH 1_000\nHALT\n", "bad.fasm:1: PUSH operand '1_000' must be an integer"),
    (".param k \u0661\nPARAM k\nHALT\n", "bad.fasm:1: parameter value '\u0661' is not"),
    ("PUSH 1\n.byte \uff11\nHALT\n", "bad.fasm:2: .byte needs one value"),
])
def test_assembly_numbers_are_ascii_and_a_separator_line_is_an_error(
        tmp_path: Path, source: str, message: str) -> None:
    # Python's int() reads any Unicode digit ('\u09ea', Bengali four, looks like an 8)
    # and underscores: the source a reviewer reads must be the number assembled.
    r = ouro("asm", str(write(tmp_path, "bad.fasm", source)))
    assert r.returncode == 1, r.stdout
    assert message in r.stderr, r.stderr
    assert "IndexError" not in r.stderr


@pytest.mark.parametrize("kind", ["directory", "dangling symlink"])
def test_an_unwritable_trend_plot_path_is_refused_before_evolving(tmp_path: Path,
                                                                  kind: str) -> None:
    # The plot's name is derived (FILE.best.trend.png) and was never checked: after the
    # whole run, "unexpected error: IsADirectoryError" and nothing submitted.
    source = write(tmp_path, "sum2x.fasm", SUM2X_SOURCE)
    tests = write(tmp_path, "sum2x.tests.json", SUM2X_TESTS)
    plot = tmp_path / "sum2x.best.trend.png"
    if kind == "directory":
        plot.mkdir()
    else:
        plot.symlink_to(tmp_path / "missing" / "x.png")
    r = ouro("evolve", str(source), "--tests", str(tests), "--no-submit", "--generations", "2",
             "--population", "4", "--json")
    assert r.returncode == 2, r.stdout
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "usage" and "trend plot" in error["message"]
    assert not (tmp_path / "sum2x.best.fasm").exists()
    r = ouro("evolve", str(source), "--tests", str(tests), "--no-submit", "--generations", "2",
             "--population", "4", "--no-plot", "--json")
    assert r.returncode == 0, r.stdout


def test_a_file_name_cannot_write_the_regression_line_of_the_reason(tmp_path: Path) -> None:
    # The patch's reason quotes the source's file name; a name with a line break and
    # "regression:" supplied the line the gate accepts as the reason a slower program
    # may replace a faster one.
    from ouroboros.capabilities.flux import governance
    from ouroboros.capabilities.flux.fitness import parse_tests

    home = tmp_path / "ws"
    Runtime.init(home).close()
    fast = assemble("SENSE 0\nSENSE 1\nDUP\nADD\nADD\nACT 0\nHALT\n")
    with Runtime.open(home) as rt:
        value = governance.bytecode_value(fast, parse_tests(SUM2X_TESTS))
        assert governance.submit_program(rt, "flux/programs/s", value, "fast").status == "applied"
    source = write(tmp_path, "slow\nregression: the name says so.fasm", SUM2X_SOURCE)
    r = ouro("evolve", str(source), "--tests", str(EXAMPLES / "sum2x.tests.json"),
             "--engine", "classic", "--generations", "1", "--population", "1", "--no-plot",
             "--target", "flux/programs/s", "-o", str(tmp_path / "b.fasm"),
             "--home", str(home), "--json")
    assert r.returncode == 3, r.stdout
    assert "fitness regression" in json.loads(r.stdout)["patch"]["reason"]
    with Runtime.open(home) as rt:
        assert rt.value("flux/programs/s")["hex"] == fast.to_hex()
