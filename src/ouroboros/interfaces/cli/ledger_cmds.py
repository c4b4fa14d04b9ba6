"""Verbs that anchor and prove the ledger, and the breakers: proof, witness, breakers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ouroboros.interfaces.cli.inputs import read_bytes, read_text
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
)
from ouroboros.kernel.errors import IntegrityError, UsageError

if TYPE_CHECKING:  # the kernel's proof modules load in the commands that use them
    from ouroboros.kernel.note import Verifier
    from ouroboros.kernel.proofs import ConsistencyProof, InclusionProof

proof_app = typer.Typer(help="Merkle proofs a third party can check offline.",
                        no_args_is_help=True)
witness_app = typer.Typer(help="Directories that keep a copy of every signed checkpoint.",
                          no_args_is_help=True)
breakers_app = typer.Typer(help="Circuit breakers by signing key (and runtime author).",
                           invoke_without_command=True)

OutputOption = typer.Option(None, "-o", "--output",
                            help="Write the proof to this file (default: standard output).")


def register(app: typer.Typer) -> None:
    app.add_typer(proof_app, name="proof")
    app.add_typer(witness_app, name="witness")
    app.add_typer(breakers_app, name="breakers")


OutputOption = typer.Option(None, "-o", "--output", metavar="FILE",
                            help="Write the proof file here (default: stdout).")


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(data.decode())
        return
    output.write_bytes(data)
    console.print(f"wrote {output}")


@proof_app.command("checkpoint")
def proof_checkpoint(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """The latest signed checkpoint (a C2SP signed note), verified before it is printed."""
    with open_runtime(home) as rt:
        note = rt.checkpoint_note()
        verifier = rt.verifier
    if as_json:
        from ouroboros.interfaces.ledger_json import checkpoint_json

        print_json(checkpoint_json(note, verifier))
        return
    sys.stdout.write(note.decode())


@proof_app.command("inclusion")
def proof_inclusion(seq: int = typer.Argument(..., help="Sequence number of the event."),
                    output: Path | None = OutputOption,
                    home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """A C2SP tlog-proof that event SEQ is in the log (under the latest checkpoint)."""
    with open_runtime(home) as rt:
        proof = rt.inclusion_proof(seq)
        verifier = rt.verifier
    if as_json:
        from ouroboros.interfaces.ledger_json import inclusion_json

        print_json(inclusion_json(proof, verifier))
        return
    _emit(proof.encode(), output)


@proof_app.command("consistency")
def proof_consistency(old: int = typer.Argument(..., help="The older tree size."),
                      new: int | None = typer.Argument(None, help="The newer tree size "
                                                       "(default: the latest checkpoint's)."),
                      output: Path | None = OutputOption,
                      home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """A proof that the log at size NEW extends the log at size OLD, unchanged."""
    with open_runtime(home) as rt:
        proof = rt.consistency_proof(old, new)
        verifier = rt.verifier
    if as_json:
        from ouroboros.interfaces.ledger_json import consistency_json

        print_json(consistency_json(proof, verifier))
        return
    _emit(proof.encode(), output)


def _is_file(text: str) -> bool:
    """Whether ``text`` names a regular file; a key that is no valid path name is not."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _verifier(vkey: str | None, home: Path | None) -> Verifier:
    from ouroboros.kernel.note import NoteError, Verifier
    from ouroboros.kernel.workspace import CONFIG_NAME, resolve_home

    if vkey is not None:
        text = read_text(vkey, "--vkey file") if _is_file(vkey) else vkey
        try:
            return Verifier.parse(text)
        except NoteError as e:
            raise UsageError(f"--vkey: {e}") from e
    if (resolve_home(home) / CONFIG_NAME).exists():
        with open_runtime(home) as rt:
            return rt.verifier
    raise UsageError("no verifier key: give --vkey NAME+ID+KEY (or a file holding it)",
                     "the log's operator publishes it: `ouro verify --json` prints it")


@proof_app.command("check")
def proof_check(file: Path = typer.Argument(..., help="A proof written by `ouro proof`."),
                vkey: str | None = typer.Option(None, "--vkey",
                                                help="The log's verifier key, or a file with it "
                                                     "(default: this workspace's)."),
                checkpoint: Path | None = typer.Option(
                    None, "--checkpoint", help="A checkpoint you already trust (e.g. a "
                    "witness's copy): the proof must be about it."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Check a proof file offline: the checkpoint signature(s), then the Merkle path
    (exit 0 valid, 1 invalid, 2 unreadable)."""
    from ouroboros.kernel.merkle import ProofError
    from ouroboros.kernel.note import NoteError
    from ouroboros.kernel.proofs import parse_proof

    data = read_bytes(file, "proof file")
    verifier = _verifier(vkey, home)
    try:
        proof = parse_proof(data)
    except ProofError as e:
        raise UsageError(f"{file} is not a proof file: {e}") from e
    held = None
    if checkpoint is not None:
        held = read_bytes(checkpoint, "checkpoint")
    try:
        result = _check(proof, verifier, held)
    except (ProofError, NoteError) as e:
        raise IntegrityError(f"the proof does not hold: {e}") from e
    if as_json:
        print_json({"ok": True, **result})
    else:
        console.print(f"[green]ok[/green]: {result['summary']}")


def _check(proof: InclusionProof | ConsistencyProof, verifier: Verifier,
           held: bytes | None) -> dict[str, Any]:
    from ouroboros.kernel.merkle import ProofError
    from ouroboros.kernel.note import Checkpoint
    from ouroboros.kernel.proofs import InclusionProof

    mine = Checkpoint.open(held, verifier) if held is not None else None
    if isinstance(proof, InclusionProof):
        cp = proof.check(verifier)
        if mine is not None and mine != cp:
            raise ProofError("the proof is about another checkpoint than the one given")
        return {"kind": "inclusion", "index": proof.index, "tree_size": cp.size,
                "origin": cp.origin,
                "summary": f"event {proof.index} is in {cp.origin} at tree size {cp.size}"}
    old, new = proof.check(verifier)
    if mine is not None and mine not in (old, new):
        raise ProofError("the proof is about other checkpoints than the one given")
    return {"kind": "consistency", "old_size": old.size, "new_size": new.size,
            "origin": new.origin,
            "summary": f"{new.origin} at size {new.size} extends its tree of size {old.size}"}


@witness_app.command("add")
def witness_add(path: Path = typer.Argument(..., help="A directory the workspace's writers "
                                            "cannot rewrite (another disk, another user)."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Keep a copy of every future checkpoint in PATH; `verify` compares with it."""
    with open_runtime(home) as rt:
        root = rt.add_witness(path)
        vkey = rt.verifier.vkey()
    if as_json:
        print_json({"witness": str(root), "vkey": vkey})
    else:
        console.print(f"witness {root} added; the log's verifier key: {vkey}")


@witness_app.command("list")
def witness_list(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """The witnesses registered in the ledger."""
    with open_runtime(home) as rt:
        paths = rt.witnesses()
    if as_json:
        print_json(paths)
    else:
        console.print("\n".join(paths) if paths else "no witnesses")


@breakers_app.callback()
def breakers_show(ctx: typer.Context, home: Path | None = HomeOption,
                  as_json: bool = JsonOption) -> None:
    """Consecutive rejections and pauses, by signing key (and runtime author)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_runtime(home) as rt:
        data = rt.breakers()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table("signer", "consecutive rejections", "paused until")
    for _subject, e in sorted(data.items(), key=lambda kv: kv[1]["label"]):
        table.add_row(e["label"], str(e["rejections"]), e.get("paused_until") or "-")
    console.print(table)


@breakers_app.command("resume")
def breakers_resume(who: str = typer.Argument(..., metavar="AUTHOR|KEY",
                                           help="The paused signing key (name or id) or "
                                                "runtime author, as `ouro breakers` "
                                                "lists it."),
                    key: list[str] = typer.Option(None, "--key",
                                                  help="Root key(s) to sign with; default root."),
                    home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Lift a pause before its cool-down ends (root-signed, recorded in the ledger)."""
    with open_runtime(home) as rt:
        seq = rt.resume(who, keys=key or None)
    if as_json:
        print_json({"resumed": who, "seq": seq})
    else:
        console.print(f"resumed {who} (seq {seq})")
