"""Kernel verbs: init, key, trust, patch, approve, reject, state, log, verify, replay, rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ouroboros.interfaces.cli import ledger_cmds
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    report_outcome,
)
from ouroboros.kernel import Runtime, UsageError
from ouroboros.kernel.clock import SystemClock, parse_when
from ouroboros.kernel.dsse import envelope_from_json, envelope_to_dict, new_envelope
from ouroboros.kernel.state import patch_from_envelope
from ouroboros.kernel.trust import TRUST_TARGET, key_names

key_app = typer.Typer(help="Ed25519 keys in the workspace keyring.", no_args_is_help=True)
trust_app = typer.Typer(help="The trust policy: which keys may sign what.", no_args_is_help=True)
patch_app = typer.Typer(help="Create, sign and submit patches.", no_args_is_help=True)


def _read(path: Path) -> str:
    try:
        return path.read_text() if str(path) != "-" else typer.get_text_stream("stdin").read()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} file {path} is not valid JSON: line {e.lineno}: {e.msg}") from e


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
    app.add_typer(trust_app, name="trust")
    app.add_typer(patch_app, name="patch")
    ledger_cmds.register(app)

    @app.command()
    def init(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Create a workspace: root and runtime keys, trust policy, genesis event."""
        with Runtime.init(home) as rt:
            info = {"home": str(rt.home), "genesis": rt.workspace.config["genesis"],
                    "keys": rt.keyring.names()}
        if as_json:
            print_json(info)
        else:
            console.print(f"workspace created at [bold]{info['home']}[/bold]; "
                          f"keys: {', '.join(info['keys'])}")

    @app.command()
    def approve(ident: str = typer.Argument(..., metavar="ID"), key: str = "root",
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Approve a pending patch (gates run again, then it applies)."""
        with open_runtime(home) as rt:
            outcome = rt.approve(ident, key=key)
        report_outcome(outcome, as_json)

    @app.command()
    def reject(ident: str = typer.Argument(..., metavar="ID"),
               reason: str = typer.Option(..., "--reason"), key: str = "root",
               home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Reject a pending patch with a reason."""
        with open_runtime(home) as rt:
            outcome = rt.reject(ident, reason, key=key)
        if as_json:
            print_json(outcome.to_dict())
        else:
            console.print(f"rejected {outcome.patch_hash}: {reason}")

    @app.command()
    def pending(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Patches waiting for approval."""
        with open_runtime(home) as rt:
            items = [{"patch_hash": h, "needs": p["needs"], "author": p["author"],
                      "target": patch_from_envelope(p["envelope"])["target"], "seq": p["seq"]}
                     for h, p in rt.pending().items()]
        if as_json:
            print_json(items)
            return
        table = Table("id", "target", "author", "needs")
        for i in items:
            table.add_row(i["patch_hash"][7:19], i["target"], i["author"], i["needs"])
        console.print(table if items else "no pending patches")

    @app.command()
    def state(target: str | None = typer.Argument(None), at: int | None = typer.Option(None, "--at"),
              home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """The current (or historical, --at SEQ) state, or one target's value."""
        with open_runtime(home) as rt:
            st = rt.state_at(at)
            if target is not None:
                if target not in st.values:
                    raise UsageError(f"no target {target!r} at seq {st.seq}",
                                     "list targets with `ouro state`")
                value = st.values[target]
                if as_json or not isinstance(value, str):
                    print_json(value)
                else:
                    console.print(value, markup=False)
                return
            breakers = rt.breakers() if at is None else {}
            summary: dict[str, Any] = {"seq": st.seq, "state_hash": st.state_hash(),
                       "targets": {t: v for t, v in sorted(st.values.items())},
                       "pending": sorted(st.pending), "breakers": breakers}
        if as_json:
            print_json(summary)
            return
        console.print(f"seq {summary['seq']}  state {summary['state_hash']}")
        table = Table("target", "value")
        for t, v in summary["targets"].items():
            text = v if isinstance(v, str) else json.dumps(v)
            table.add_row(t, text if len(text) < 80 else text[:77] + "...")
        console.print(table)
        for e in summary["breakers"].values():
            if e.get("paused_until"):
                console.print(f"[red]{e['label']} paused until {e['paused_until']}[/red]")

    @app.command()
    def log(kind: str | None = typer.Option(None, "--kind"), since: int = 0,
            limit: int | None = None, home: Path | None = HomeOption,
            as_json: bool = JsonOption) -> None:
        """Ledger events (optionally of one kind)."""
        with open_runtime(home) as rt:
            events = rt.log(kind=kind, since=since, limit=limit)
        if as_json:
            print_json([e.to_dict() for e in events])
            return
        table = Table("seq", "kind", "time", "summary")
        for e in events:
            p = e.payload
            summary = " ".join(str(p[k]) for k in ("target", "stage", "reason", "author", "root")
                               if k in p)
            table.add_row(str(e.seq), e.kind, e.time[:19], summary[:90])
        console.print(table)

    @app.command()
    def verify(witness: list[Path] = typer.Option(None, "--witness",
                                                  help="Also compare with this witness "
                                                       "directory's checkpoint."),
               home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Check every link, signature, snapshot and checkpoint, replay the history and
        compare with every signed checkpoint known; exit 1 naming the first problem."""
        with open_runtime(home) as rt:
            report = rt.verify(witnesses=witness or ())
            vkey = rt.verifier.vkey()
            unwritten = dict(rt.witness_errors)
        if as_json:
            print_json({"ok": True, "events": report.events, "checkpoints": report.checkpoints,
                        "head": report.head, "snapshots": report.snapshots, "vkey": vkey,
                        "anchors": [{"source": s, "tree_size": n} for s, n in report.anchors],
                        "witness_errors": unwritten})
            return
        console.print(f"[green]ok[/green]: {report.events} events, "
                      f"{report.checkpoints} checkpoints, {report.snapshots} snapshots, "
                      f"head {report.head}")
        for source, size in report.anchors:
            console.print(f"  consistent with {source} (tree size {size})")

    @app.command()
    def replay(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Recompute state from genesis and print its hash (must equal the snapshot path's)."""
        with open_runtime(home) as rt:
            r = rt.replay()
        data = {"events": r.events, "state_hash": r.state_hash,
                "snapshot_state_hash": r.snapshot_state_hash, "consistent": r.consistent}
        if as_json:
            print_json(data)
        else:
            console.print(r.state_hash)
        if not r.consistent:
            console.print(f"[red]snapshot path disagrees: {r.snapshot_state_hash}[/red]")
            raise typer.Exit(1)

    @app.command()
    def rollback(to: int | None = typer.Option(None, "--to"),
                 patch: str | None = typer.Option(None, "--patch"),
                 key: list[str] = typer.Option(None, "--key", help="Signing key(s); default root."),
                 home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Append the inverse patches that restore an earlier state (history is kept)."""
        with open_runtime(home) as rt:
            outcomes = rt.rollback(to=to, patch=patch, keys=key or None)
            state_hash = rt.state_hash()
        if as_json:
            print_json({"applied": [o.to_dict() for o in outcomes], "state_hash": state_hash})
        else:
            console.print(f"rolled back {len(outcomes)} patch(es); state {state_hash}")


@key_app.command("new")
def key_new(name: str, home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Create an Ed25519 key (not trusted until `ouro trust grant`)."""
    with open_runtime(home) as rt:
        signer = rt.keyring.new(name)
    if as_json:
        print_json({"name": name, "key_id": signer.key_id, "public": signer.public_hex})
    else:
        console.print(f"key {name}: {signer.key_id}")


@key_app.command("list")
def key_list(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Keys in the keyring and their role in the trust policy."""
    with open_runtime(home) as rt:
        policy = rt.value(TRUST_TARGET)
        rows: list[dict[str, Any]] = []
        for name in rt.keyring.names():
            kid, _ = rt.keyring.public(name)
            roles = (["root"] if kid in policy["root"]["keys"] else []) + [
                d["name"] for d in policy["delegations"] if kid in d["keys"]]
            rows.append({"name": name, "key_id": kid, "roles": roles})
    if as_json:
        print_json(rows)
        return
    table = Table("name", "key id", "roles")
    for r in rows:
        table.add_row(r["name"], r["key_id"][:16], ", ".join(r["roles"]) or "untrusted")
    console.print(table)


@trust_app.command("show")
def trust_show(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """The current trust policy."""
    with open_runtime(home) as rt:
        policy = rt.value(TRUST_TARGET)
    if as_json:
        print_json(policy)
        return
    names = key_names(policy)
    console.print(f"root: {', '.join(names[k] for k in policy['root']['keys'])} "
                  f"(threshold {policy['root']['threshold']})")
    table = Table("delegation", "keys", "types", "targets", "threshold", "rights", "expires")
    for d in policy["delegations"]:
        table.add_row(str(d["name"]), ", ".join(names.get(k, k[:12]) for k in d["keys"]),
                      ", ".join(d["types"]), ", ".join(d["targets"]), str(d["threshold"]),
                      ", ".join(d.get("rights", [])), d.get("expires") or "-")
    console.print(table)
    for kid, r in policy.get("revoked", {}).items():
        console.print(f"revoked: {r.get('name', kid[:12])} ({kid[:12]}) at {r['at']}"
                      + (f": {r['reason']}" if r.get("reason") else ""))


@trust_app.command("grant")
def trust_grant(keys: str = typer.Argument(..., metavar="KEY[,KEY..]",
                                           help="Key name(s) in the keyring."),
                types: str = typer.Option(..., "--types", help="Comma-separated patch types."),
                targets: str = typer.Option("*", "--targets", help="Comma-separated target globs."),
                threshold: int = typer.Option(1, "--threshold", min=1,
                                              help="How many of the keys must sign."),
                expires: str | None = typer.Option(None, "--expires",
                                                   help="30d, 12h, 2027-01-31 or an ISO time."),
                rights: str = typer.Option("", "--rights", help="grant and/or approve."),
                name: str | None = typer.Option(None, "--name", help="Delegation name "
                                                "(default: the key names joined by '+')."),
                sign_with: list[str] = typer.Option(None, "--sign-with",
                                                    help="Root key(s) to sign with; default root."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Delegate patch types and targets to one or more keys (a root-signed `trust` patch)."""
    names = _split(keys)
    when = None
    if expires is not None:
        try:
            when = parse_when(expires, SystemClock().now())
        except ValueError as e:
            raise UsageError(f"--expires: {e}") from e
    with open_runtime(home) as rt:
        outcome = rt.grant(names, types=_split(types), targets=_split(targets),
                           threshold=threshold, rights=_split(rights), expires=when, name=name,
                           sign_with=sign_with or None)
    report_outcome(outcome, as_json)


@trust_app.command("revoke")
def trust_revoke(key: str = typer.Argument(..., help="Key name or key id."),
                 reason: str = typer.Option("", "--reason"),
                 sign_with: list[str] = typer.Option(None, "--sign-with",
                                                     help="Root key(s) to sign with; default root."),
                 home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Revoke a key: its signatures are refused from now on, naming the revocation."""
    with open_runtime(home) as rt:
        outcome, notes = rt.revoke(key, reason=reason, sign_with=sign_with or None)
    if not as_json and outcome.status == "applied":
        for note in notes:
            console.print(f"  {key}: {note}")
    report_outcome(outcome, as_json)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@patch_app.command("new")
def patch_new(type_: str = typer.Option(..., "--type"), target: str = typer.Option(...),
              value: Path | None = typer.Option(None, "--value", help="JSON value file."),
              text: Path | None = typer.Option(None, "--text", help="Text value file."),
              json_patch: Path | None = typer.Option(None, "--json-patch"),
              diff: Path | None = typer.Option(None, "--diff"),
              delete: bool = typer.Option(False, "--delete"),
              reason: str = typer.Option(..., "--reason"),
              test: list[str] = typer.Option(None, "--test"),
              author: str = typer.Option("operator", "--author"),
              output: Path | None = typer.Option(None, "-o", "--output"),
              home: Path | None = HomeOption) -> None:
    """Write an unsigned patch envelope against the target's current value."""
    given = [x for x in (value, text, json_patch, diff) if x is not None] + ([1] if delete else [])
    if len(given) != 1:
        raise UsageError("give exactly one of --value, --text, --json-patch, --diff or --delete")
    with open_runtime(home) as rt:
        if rt.registry.get(type_) is None:
            raise UsageError(f"unknown patch type {type_!r}",
                             f"known: {', '.join(sorted(rt.registry.types))}")
        patch = rt.propose(
            type_, target, reasoning=reason, tests=test or [], author=author, delete=delete,
            value=_read_json(value, "value") if value else (_read(text) if text else None),
            json_patch=_read_json(json_patch, "JSON Patch") if json_patch else None,
            diff=_read(diff) if diff else None)
    data = json.dumps(envelope_to_dict(new_envelope(patch.canonical())), indent=2) + "\n"
    if output:
        output.write_text(data)
        console.print(f"wrote {output} ({patch.hash})")
    else:
        typer.echo(data, nl=False)


@patch_app.command("sign")
def patch_sign(file: Path, key: str = typer.Option(..., "--key"),
               output: Path | None = typer.Option(None, "-o", "--output"),
               home: Path | None = HomeOption) -> None:
    """Add a signature to an envelope (in place unless -o)."""
    envelope = envelope_from_json(_read(file))
    with open_runtime(home) as rt:
        rt.sign(envelope, key)
    (output or file).write_text(json.dumps(envelope_to_dict(envelope), indent=2) + "\n")
    console.print(f"signed {output or file} with {key} ({len(envelope.signatures)} signature(s))")


@patch_app.command("show")
def patch_show(file: Path, as_json: bool = JsonOption) -> None:
    """Decode an envelope: the patch and who signed it."""
    envelope = envelope_from_json(_read(file))
    data = {"patch": json.loads(envelope.payload), "signatures": sorted(envelope.signatures)}
    print_json(data) if as_json else console.print_json(json.dumps(data))


@patch_app.command("submit")
def patch_submit(file: Path, home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Run the gates and apply (exit 0 applied, 3 rejected, 4 pending)."""
    text = _read(file)
    with open_runtime(home) as rt:
        outcome = rt.submit(text)
    report_outcome(outcome, as_json)
