"""`ouro flux`: assemble, verify, run and evolve FLUX programs.

Exit codes: 0 ok; 1 a program that does not assemble or verify, or a run that trapped;
2 usage (missing file, malformed --input or tests file); 3 the kernel rejected the
evolved program; 4 it waits for approval.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

import typer

from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.isa import (
    DEFAULT_FUEL,
    INT64_MAX,
    INT64_MIN,
    MAGIC,
    MAX_CODE_BYTES,
    DecodeError,
    Image,
)
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import RunResult
from ouroboros.capabilities.flux.vm import run as run_reference
from ouroboros.interfaces.cli.errors import CliError
from ouroboros.interfaces.cli.executors import ExecutorKind, ExecutorOption, RayAddressOption
from ouroboros.interfaces.cli.inputs import read_bytes, writable_parent
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import JsonOption, err_console

app = typer.Typer(cls=OuroGroup, no_args_is_help=True,
                  help="FLUX bytecode VM: assemble, verify, run and evolve programs.")
err = err_console
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "flux"
#: A FLUX image or source larger than this is refused (programs are a few KiB).
MAX_PROGRAM_BYTES = 4 << 20


def fail(message: str, code: int, hint: str = "") -> NoReturn:
    raise CliError(message, hint, exit_code=code)


def load_image(path: Path) -> Image:
    """A FLUX image from assembly text, a binary image, or an image in hex; an image
    whose code is beyond the size bound is refused here (no command can use it, and
    decoding megabytes of it took seconds and gigabytes)."""
    data = read_bytes(path, "program", max_bytes=MAX_PROGRAM_BYTES)
    try:
        if data.startswith(MAGIC):
            return _bounded(path, Image.from_bytes(data))
        text = data.decode("utf-8")
        if text.strip().lower().startswith(MAGIC.hex()):
            return _bounded(path, Image.from_bytes(bytes.fromhex(text.strip())))
        return assemble(text)
    except AssemblyError as exc:
        fail(f"{path}:{exc.line}: {exc.reason}", 1)
    except UnicodeDecodeError as exc:
        fail(f"{path} is neither a FLUX image nor UTF-8 assembly (bad byte at offset "
             f"{exc.start})", 1)
    except (DecodeError, ValueError, RecursionError) as exc:
        fail(f"{path}: {exc}", 1)
    except LookupError as exc:  # the assembler indexes past a line like "," (a bug there)
        fail(f"{path}: not FLUX assembly ({type(exc).__name__}: {exc})", 1)


def _bounded(path: Path, image: Image) -> Image:
    if len(image.code) > MAX_CODE_BYTES:
        fail(f"{path}: program is {len(image.code)} bytes; the size bound is "
             f"{MAX_CODE_BYTES}", 1)
    return image


@app.command("asm")
def asm_command(
    file: Path = typer.Argument(..., help="Assembly source (.fasm)."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="Write the binary image here."),
    as_json: bool = JsonOption,
) -> None:
    """Assemble FILE: the image in hex on stdout, or the binary image with -o."""
    image = load_image(file)
    if output is None:
        typer.echo(json.dumps({"hex": image.to_hex()}) if as_json else image.to_hex())
        return
    writable_parent(output, "--output")
    try:
        output.write_bytes(image.to_bytes())
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", 2)
    if as_json:
        typer.echo(json.dumps({"output": str(output), "bytes": len(image.to_bytes())}))
    else:
        err.print(f"wrote {len(image.to_bytes())} bytes to {output}", markup=False)


@app.command("disasm")
def disasm_command(file: Path = typer.Argument(..., help="Image (binary or hex) or assembly."),
                   as_json: bool = JsonOption) -> None:
    """Print the canonical assembly of FILE."""
    text = disassemble(load_image(file))
    if as_json:
        typer.echo(json.dumps({"assembly": text}))
    else:
        typer.echo(text, nl=False)


@app.command("verify")
def verify_command(
    file: Path = typer.Argument(..., help="Program: assembly, binary image or hex."),
    as_json: bool = JsonOption,
) -> None:
    """Check FILE against the verifier rules: exit 0 if valid, 1 listing every reason."""
    verdict = verify(load_image(file))
    if as_json:
        typer.echo(json.dumps({"ok": verdict.ok, "reasons": list(verdict.reasons),
                               "max_stack_depth": verdict.max_depth}))
    elif verdict.ok:
        typer.echo(f"ok: {len(verdict.instructions)} instructions, "
                   f"max stack depth {verdict.max_depth}")
    else:
        for reason in verdict.reasons:
            typer.echo(f"{file}: {reason}")
    raise typer.Exit(0 if verdict.ok else 1)


def parse_inputs(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if any(len(part) > 24 for part in parts):
        fail("--input values must fit in 64 bits (signed)", 2)
    try:
        values = [int(part, 0) for part in parts]
    except ValueError:
        fail(f"--input must be comma-separated integers, got {text[:60]!r}", 2)
    if any(not INT64_MIN <= v <= INT64_MAX for v in values):
        fail("--input values must fit in 64 bits (signed)", 2)
    return values


def inputs_read(image: Image) -> int:
    """How many inputs a program reads: one more than its highest SENSE or INSTINCT
    index. Decoded as far as it decodes: an unverified image (a jump into the middle of
    an instruction, a bad opcode) is the reference engine's to trap on, not an error."""
    from ouroboros.capabilities.flux.isa import Opcode, decode_at

    channels, offset = [], 0
    while offset < len(image.code):
        try:
            ins = decode_at(image.code, offset)
        except DecodeError:
            break
        if ins.opcode in (Opcode.SENSE, Opcode.INSTINCT):
            channels.append(ins.args[0])
        offset += ins.size
    return max(channels) + 1 if channels else 0


def execute(image: Image, inputs: list[int], fuel: int, engine: str) -> RunResult:
    verdict = verify(image)
    if engine == "reference" or (engine == "auto" and not verdict.ok):
        return run_reference(image, inputs, fuel=fuel)
    if not verdict.ok:
        fail(f"the {engine} engine runs verified programs only; use --engine reference", 1)
    if engine == "fast":
        from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded

        return run_predecoded(predecode(image.params, verdict.instructions), inputs, fuel=fuel)
    from ouroboros.capabilities.flux.wasm import run_fast

    return run_fast(image, inputs, fuel=fuel)


@app.command("run")
def run_command(
    file: Path = typer.Argument(..., help="Program: assembly, binary image or hex."),
    inputs: str = typer.Option("", "--input", metavar="N,..",
                               help="Comma-separated integer inputs, e.g. 3,4."),
    fuel: int = typer.Option(DEFAULT_FUEL, "--fuel", min=1, help="Cycle budget."),
    engine: Literal["auto", "reference", "fast", "wasm"] = typer.Option(
        "auto", "--engine", help="auto: wasm when the program verifies, else reference."),
    pad: bool = typer.Option(False, "--pad-inputs",
                             help="Let missing inputs read as 0 instead of refusing."),
    as_json: bool = JsonOption,
) -> None:
    """Run FILE on the inputs; exit 1 if the run trapped (the trap is in the result)."""
    image = load_image(file)
    values = parse_inputs(inputs)
    needed = inputs_read(image)
    if len(values) < needed and not pad:
        fail(f"{file.name} reads {needed} input(s) (SENSE/INSTINCT 0..{needed - 1}) but "
             f"--input gave {len(values)}", 2, "give every input, or --pad-inputs to read missing ones as 0")
    result = execute(image, values, fuel, engine)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        status = "halted" if result.halted else f"trap: {result.trap}"
        typer.echo(f"output: {list(result.output)}  cycles: {result.cycles}  {status}")
    raise typer.Exit(0 if result.halted else 1)


@app.command("evolve")
def evolve_command(
    file: Path = typer.Argument(..., help="Program to improve: assembly, image or hex."),
    tests: Path = typer.Option(..., "--tests", metavar="FILE",
                               help='JSON list of {"input": [...], "output": [...]}.'),
    generations: int = typer.Option(200, "--generations", min=1, max=1_000_000,
                                    help="Generations to run (classic engine; with the "
                                         "search, the default budget is generations x "
                                         "population)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same run)."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="Best program (.fasm); default FILE.best.fasm "
                                            "beside FILE."),
    population: int = typer.Option(16, "--population", min=1, max=100_000,
                                   help="Candidates per generation."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=256,
                                       help="Processes evaluating candidates (default: "
                                            "from the batch size)."),
    engine: Literal["search", "classic"] = typer.Option(
        "search", "--engine", help="search (STOKE-style, with equivalence proofs) or classic."),
    budget: int | None = typer.Option(None, "--budget", min=1, max=100_000_000,
                                      help="Candidate evaluations (default generations x "
                                           "population)."),
    executor: ExecutorKind = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    trust: float = typer.Option(1.0, "--trust", min=0.0, max=1.0,
                                help="Trust in the evolver, 0..1: it scales fitness, and "
                                     "below the policy's minimum (0.5) evolution is refused."),
    target: str | None = typer.Option(None, "--target", metavar="TARGET",
                                      help="Ledger target (default: flux/programs/NAME)."),
    home: Path | None = typer.Option(None, "--home", envvar="OURO_HOME", metavar="DIR",
                                     help="Workspace (default: $OURO_HOME, else ./.ouro)."),
    submit: bool = typer.Option(True, "--submit/--no-submit",
                                help="Submit the winner as a bytecode patch."),
    plot: bool = typer.Option(True, "--plot/--no-plot",
                              help="Draw the trend plot (FILE.best.trend.png)."),
    as_json: bool = JsonOption,
) -> None:
    """Evolve FILE against TESTS; write the best program, a trend plot, and submit it."""
    from ouroboros.interfaces.cli.flux_evolve import EvolveRequest, evolve

    best_path = output or file.with_name(file.stem + ".best.fasm")
    writable_parent(best_path, "--output")
    if plot:  # its name is derived: check it before the run, not after
        writable_parent(best_path.with_name(best_path.stem + ".trend.png"), "trend plot")
    request = EvolveRequest(
        source=file, tests=tests, generations=generations, seed=seed,
        output=best_path, population=population,
        workers=workers, trust=trust, target=target or f"flux/programs/{file.stem}",
        home=home, submit=submit, quiet=as_json, plot=plot, engine=engine, budget=budget,
        executor=executor, ray_address=ray_address,
    )
    summary, code = evolve(request, load_image, fail, err)
    if as_json:
        typer.echo(json.dumps(summary))
    raise typer.Exit(code)


def run_demo(rt: Any, say: Callable[[str], None]) -> None:
    from ouroboros.interfaces.cli.flux_evolve import demo

    demo(rt, say, EXAMPLES)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
