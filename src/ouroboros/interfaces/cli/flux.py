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
from typing import Any, NoReturn

import typer

from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
from ouroboros.capabilities.flux.isa import (
    DEFAULT_FUEL,
    INT64_MAX,
    INT64_MIN,
    MAGIC,
    DecodeError,
    Image,
)
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import RunResult
from ouroboros.capabilities.flux.vm import run as run_reference
from ouroboros.interfaces.cli.output import err_console

app = typer.Typer(help="FLUX bytecode VM: assemble, verify, run and evolve programs.",
                  no_args_is_help=True)
err = err_console
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "flux"


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def load_image(path: Path) -> Image:
    """A FLUX image from assembly text, a binary image, or an image in hex."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    try:
        if data.startswith(MAGIC):
            return Image.from_bytes(data)
        text = data.decode("utf-8")
        if text.strip().lower().startswith(MAGIC.hex()):
            return Image.from_bytes(bytes.fromhex(text.strip()))
        return assemble(text)
    except AssemblyError as exc:
        fail(f"{path}:{exc.line}: {exc.reason}", 1)
    except (DecodeError, UnicodeDecodeError, ValueError) as exc:
        fail(f"{path}: {exc}", 1)


@app.command("asm")
def asm_command(
    file: Path = typer.Argument(..., help="assembly source (.fasm)"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write the binary image here"),
) -> None:
    """Assemble FILE: the image in hex on stdout, or the binary image with -o."""
    image = load_image(file)
    if output is None:
        typer.echo(image.to_hex())
    else:
        try:
            output.write_bytes(image.to_bytes())
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}", 2)
        err.print(f"wrote {len(image.to_bytes())} bytes to {output}")


@app.command("disasm")
def disasm_command(file: Path = typer.Argument(..., help="image (binary or hex) or assembly")) -> None:
    """Print the canonical assembly of FILE."""
    typer.echo(disassemble(load_image(file)), nl=False)


@app.command("verify")
def verify_command(
    file: Path = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
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
    try:
        values = [int(part, 0) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--input must be comma-separated integers, got {text!r}", 2)
    if any(not INT64_MIN <= v <= INT64_MAX for v in values):
        fail("--input values must fit in 64 bits (signed)", 2)
    return values


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
    file: Path = typer.Argument(...),
    inputs: str = typer.Option("", "--input", help="comma-separated inputs, e.g. 3,4"),
    fuel: int = typer.Option(DEFAULT_FUEL, "--fuel", min=1, help="cycle budget"),
    engine: str = typer.Option("auto", "--engine",
                               help="auto | reference | fast | wasm (auto: wasm if verified)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run FILE on the inputs; exit 1 if the run trapped (the trap is in the result)."""
    if engine not in ("auto", "reference", "fast", "wasm"):
        fail(f"unknown engine {engine!r}: use auto, reference, fast or wasm", 2)
    result = execute(load_image(file), parse_inputs(inputs), fuel, engine)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        status = "halted" if result.halted else f"trap: {result.trap}"
        typer.echo(f"output: {list(result.output)}  cycles: {result.cycles}  {status}")
    raise typer.Exit(0 if result.halted else 1)


@app.command("evolve")
def evolve_command(
    file: Path = typer.Argument(...),
    tests: Path = typer.Option(..., "--tests", help='JSON list of {"input": [...], "output": [...]}'),
    generations: int = typer.Option(200, "--generations", min=1),
    seed: int = typer.Option(0, "--seed"),
    output: Path | None = typer.Option(None, "-o", "--output", help="best program (.fasm)"),
    population: int = typer.Option(16, "--population", min=1, help="candidates per generation"),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                       help="processes (default: from the batch size)"),
    engine: str = typer.Option("search", "--engine",
                               help="search (STOKE-style, with equivalence proofs) | classic"),
    budget: int | None = typer.Option(None, "--budget", min=1,
                                      help="candidate evaluations (default generations x "
                                           "population)"),
    executor: str = typer.Option("process", "--executor", help="local | process"),
    trust: float = typer.Option(1.0, "--trust", min=0.0, max=1.0),
    target: str | None = typer.Option(None, "--target", help="ledger target (flux/programs/NAME)"),
    home: Path | None = typer.Option(None, "--home", envvar="OURO_HOME",
                                     help="workspace (default: ./.ouro)"),
    submit: bool = typer.Option(True, "--submit/--no-submit", help="submit the winner as a patch"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evolve FILE against TESTS; write the best program, a trend plot, and submit it."""
    if executor not in ("local", "process"):
        fail(f"unknown executor {executor!r}: use local or process", 2)
    from ouroboros.interfaces.cli.flux_evolve import EvolveRequest, evolve

    best_path = output or file.with_name(file.stem + ".best.fasm")
    if not best_path.parent.is_dir():
        fail(f"cannot write {best_path}: no directory {best_path.parent}", 2)
    request = EvolveRequest(
        source=file, tests=tests, generations=generations, seed=seed,
        output=best_path, population=population,
        workers=workers, trust=trust, target=target or f"flux/programs/{file.stem}",
        home=home, submit=submit, quiet=as_json, engine=engine, budget=budget,
        executor=executor,
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
