"""Kernel verbs: init, key, trust, patch, approve, reject, state, log, verify, replay, rollback.

The kernel is imported inside each command, not at module level: this module is loaded
for every ``ouro`` invocation (``--help`` included), and the kernel's dependencies
(cryptography, jsonschema, the Rego engine) cost more than the rest of start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ouroboros.interfaces.cli import ledger_cmds
from ouroboros.interfaces.cli.errors import not_found, usage
from ouroboros.interfaces.cli.inputs import MAX_INPUT_BYTES, read_json, read_text, writable_parent
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    report_outcome,
    working,
)

if TYPE_CHECKING:
    from rich.table import Table

    from ouroboros.kernel.ledger import Event

key_app = typer.Typer(help="Ed25519 keys in the workspace keyring.", no_args_is_help=True)
trust_app = typer.Typer(help="The trust policy: which keys may sign what.", no_args_is_help=True)
patch_app = typer.Typer(help="Create, sign and submit patches.", no_args_is_help=True)

KeyOption = typer.Option("root", "--key", metavar="NAME",
                         help="Key that signs the decision (needs the approve right).")


def _table(*columns: str) -> Table:
    from rich.table import Table

    return Table(*columns)


_IDENT = re.compile(r"(sha256:)?[0-9a-f]{4,64}")


def _ident(ident: str) -> str:
    """A pending patch id: 4 to 64 hex digits of its hash (an empty or short prefix would
    match patches the user did not mean)."""
    if not _IDENT.fullmatch(ident):
        raise usage(f"{ident[:80]!r} is not a patch id",
                    "give at least 4 hex digits of its hash (see `ouro pending`)")
    return ident


def _plain(text: str) -> Any:
    """A table cell shown as written: user text is not Rich markup."""
    from rich.text import Text

    return Text(text)


def _has_password(url: str) -> bool:
    from ouroboros.storage.postgres.url import parse

    return parse(url).has_password


def _short(patch_hash: str) -> str:
    """The id people type: 12 hex digits after ``sha256:`` (any unique prefix works)."""
    return patch_hash[7:19]


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key", rich_help_panel="Workspace")
    app.add_typer(trust_app, name="trust", rich_help_panel="Workspace")
    app.add_typer(patch_app, name="patch", rich_help_panel="Patches")
    ledger_cmds.register(app)

    @app.command(rich_help_panel="Workspace")
    def init(home: Path | None = HomeOption,
             ledger: str | None = typer.Option(
                 None, "--ledger", metavar="URL",
                 help="Keep the ledger in PostgreSQL: postgresql://USER@HOST[:PORT]/DB"
                      "[?ledger=NAME] (stored without its password; see docs/postgresql.md)."),
             as_json: bool = JsonOption) -> None:
        """Create a workspace: root and runtime keys, trust policy, genesis event."""
        from ouroboros.kernel import Runtime
        from ouroboros.kernel.workspace import resolve_home

        where = resolve_home(home)
        if where.exists() and not where.is_dir():
            raise usage(f"{where} exists and is not a directory", "pick another --home")
        try:
            rt = Runtime.init(home, ledger=ledger)
        except OSError as e:
            raise usage(f"cannot create a workspace at {where}: {e.strerror}",
                        "pick another --home") from None
        with rt:
            info = {"home": str(rt.home), "genesis": rt.workspace.config["genesis"],
                    "keys": rt.keyring.names(), "ledger": rt.workspace.ledger_url or "sqlite"}
        if as_json:
            print_json(info)
        else:
            console.print(f"workspace created at [bold]{info['home']}[/bold]; "
                          f"keys: {', '.join(info['keys'])}", markup=True)
            if ledger is not None:
                console.print(f"ledger: {info['ledger']}", markup=False)
                if _has_password(ledger):
                    console.print("the password was not stored: give it to later commands "
                                  "with PGPASSWORD, ~/.pgpass or $OURO_LEDGER_URL",
                                  markup=False)

    @app.command(rich_help_panel="Workspace")
    def migrate(to: str = typer.Option(..., "--to", metavar="URL",
                                       help="The empty PostgreSQL ledger to move to."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Copy this workspace's SQLite ledger into PostgreSQL, verify the copy in full,
        then switch the workspace to it (nothing changes if any step fails)."""
        from ouroboros.kernel.migrate import migrate as run_migration
        from ouroboros.kernel.workspace import Workspace, resolve_home

        with working("copying and verifying the ledger"):
            report = run_migration(Workspace.load(resolve_home(home)), to)
        info = {"ledger": report.url, "events": report.events, "snapshots": report.snapshots,
                "index_rows": report.index_rows, "head": report.head}
        if as_json:
            print_json(info)
        else:
            console.print(f"moved {report.events:,} events to {report.url} and verified "
                          f"them; the workspace now uses it", markup=False)

    @app.command(rich_help_panel="Patches")
    def approve(ident: str = typer.Argument(..., metavar="ID",
                                            help="Pending patch id (a prefix of its hash)."),
                key: str = KeyOption, home: Path | None = HomeOption,
                as_json: bool = JsonOption) -> None:
        """Approve a pending patch (gates run again, then it applies)."""
        with open_runtime(home) as rt:
            outcome = rt.approve(_ident(ident), key=key)
        report_outcome(outcome, as_json)

    @app.command(rich_help_panel="Patches")
    def reject(ident: str = typer.Argument(..., metavar="ID",
                                           help="Pending patch id (a prefix of its hash)."),
               reason: str = typer.Option(..., "--reason", help="Why (kept in the ledger)."),
               key: str = KeyOption, home: Path | None = HomeOption,
               as_json: bool = JsonOption) -> None:
        """Reject a pending patch with a reason."""
        with open_runtime(home) as rt:
            outcome = rt.reject(_ident(ident), reason, key=key)
        if as_json:
            print_json(outcome.to_dict())
        else:
            console.print(f"rejected {outcome.patch_hash}: {reason}", markup=False)

    @app.command(rich_help_panel="Patches")
    def pending(quiet: bool = typer.Option(False, "--quiet", "-q",
                                           help="Only the ids, one per line (e.g. `ouro "
                                                "approve $(ouro pending -q | head -1)`)."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Patches waiting for approval (approve with `ouro approve ID`)."""
        from ouroboros.kernel.state import patch_from_envelope

        with open_runtime(home, capabilities=False) as rt:
            items = [{"patch_hash": h, "needs": p["needs"], "author": p["author"],
                      "target": patch_from_envelope(p["envelope"])["target"], "seq": p["seq"]}
                     for h, p in rt.pending().items()]
        if as_json:
            print_json(items)
            return
        if quiet:
            for i in items:
                typer.echo(_short(i["patch_hash"]))
            return
        if not items:
            console.print("no pending patches")
            return
        table = _table("id", "target", "author", "needs")
        table.columns[0].no_wrap = True
        for i in items:
            table.add_row(_short(i["patch_hash"]), _plain(i["target"]), _plain(i["author"]),
                          _plain(i["needs"]))
        console.print(table)
        console.print("approve with `ouro approve ID` or reject with "
                      "`ouro reject ID --reason TEXT`")

    @app.command(rich_help_panel="Ledger")
    def state(target: str | None = typer.Argument(None, help="One target's value (e.g. "
                                                  "agents/support/prompt); all when omitted."),
              at: int | None = typer.Option(None, "--at", metavar="SEQ", min=0,
                                            help="The state right after event SEQ "
                                                 "(see `ouro log`)."),
              home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """The current (or historical, --at SEQ) state, or one target's value."""
        with open_runtime(home, capabilities=False) as rt:
            st = rt.state_at(at)
            if target is not None:
                if target not in st.values:
                    raise not_found(f"no target {target!r} at seq {st.seq}",
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
        console.print(f"seq {summary['seq']}\nstate {summary['state_hash']}")
        table = _table("target", "value")
        table.columns[0].overflow = "fold"
        table.columns[1].overflow = "fold"
        for t, v in summary["targets"].items():
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            text = " ".join(text.split())
            table.add_row(_plain(t), _plain(text if len(text) < 120 else text[:117] + "..."))
        console.print(table)
        console.print("a whole value: `ouro state TARGET`", markup=False)
        for e in summary["breakers"].values():
            if e.get("paused_until"):
                console.print(f"{e['label']} paused until {e['paused_until']}", style="red",
                              markup=False)

    @app.command(rich_help_panel="Ledger")
    def log(kind: str | None = typer.Option(None, "--kind", metavar="KIND",
                                            help="Only events of this kind, e.g. "
                                                 "PatchApplied, PatchRejected, PatchPending."),
            since: int = typer.Option(0, "--since", metavar="SEQ", min=0,
                                      help="Start at event SEQ."),
            limit: int | None = typer.Option(None, "--limit", metavar="N", min=1,
                                             help="At most N events."),
            home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Ledger events: seq, kind, time and a summary."""
        if kind is not None and not re.fullmatch(r"[A-Z][A-Za-z0-9]{0,63}", kind):
            raise usage(f"--kind {kind!r} is not an event kind",
                        "kinds are CamelCase names such as PatchApplied")
        with open_runtime(home, capabilities=False) as rt:
            events = rt.log(kind=kind, since=since, limit=limit)
            if kind is not None and not events:
                _check_kind(rt.log(since=0), kind)
        if as_json:
            print_json([e.to_dict() for e in events])
            return
        _print_events(events)

    @app.command(rich_help_panel="Ledger")
    def verify(witness: list[Path] = typer.Option(None, "--witness", metavar="DIR",
                                                  help="Also compare with this witness "
                                                       "directory's checkpoint (repeatable)."),
               home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Check every link, signature, snapshot and checkpoint, replay the history and
        compare with every signed checkpoint known; exit 1 naming the first problem."""
        with open_runtime(home) as rt, working(f"verifying {rt.backend.count():,} events"):
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

    @app.command(rich_help_panel="Ledger")
    def replay(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Recompute state from genesis and print its hash (must equal the snapshot path's)."""
        from ouroboros.interfaces.cli.errors import CliError

        with open_runtime(home) as rt, working(f"replaying {rt.backend.count():,} events"):
            r = rt.replay()
        data = {"events": r.events, "state_hash": r.state_hash,
                "snapshot_state_hash": r.snapshot_state_hash, "consistent": r.consistent}
        if not r.consistent:
            raise CliError(f"replay gives {r.state_hash}, but the snapshot path gives "
                           f"{r.snapshot_state_hash}", "run `ouro verify`; the snapshots "
                           "are damaged if the ledger verifies", exit_code=1, code="integrity")
        if as_json:
            print_json(data)
        else:
            console.print(r.state_hash)

    @app.command(rich_help_panel="Ledger")
    def rollback(to: int | None = typer.Option(None, "--to", metavar="SEQ", min=0,
                                               help="Restore the state as it was right after "
                                                    "event SEQ."),
                 patch: str | None = typer.Option(None, "--patch", metavar="HASH",
                                                  help="Undo one applied patch (a prefix of "
                                                       "its hash)."),
                 key: list[str] = typer.Option(None, "--key", metavar="NAME",
                                               help="Signing key(s); default root."),
                 home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Append the inverse patches that restore an earlier state (history is kept)."""
        if (to is None) == (patch is None):
            raise usage("give exactly one of --to SEQ or --patch HASH")
        with open_runtime(home) as rt:
            outcomes = rt.rollback(to=to, patch=patch, keys=key or None)
            state_hash = rt.state_hash()
        if as_json:
            print_json({"applied": [o.to_dict() for o in outcomes], "state_hash": state_hash})
        else:
            console.print(f"rolled back {len(outcomes)} patch(es); state {state_hash}")


def _check_kind(events: list[Event], kind: str) -> None:
    from ouroboros.kernel.state import KERNEL_KINDS

    present = sorted({e.kind for e in events})
    if kind not in KERNEL_KINDS and kind not in present:
        raise usage(f"no event kind {kind!r} in this ledger",
                    f"kinds here: {', '.join(present)}")


def _print_events(events: list[Event]) -> None:
    table = _table("seq", "kind", "time", "summary")
    table.columns[0].justify = "right"
    table.columns[2].no_wrap = True
    table.columns[3].overflow = "fold"
    for e in events:
        p = e.payload
        parts = [str(p[k]) for k in ("target", "stage", "reason", "author", "root") if k in p]
        if "patch_hash" in p:
            parts.insert(0, _short(str(p["patch_hash"])))
        summary = " ".join(" ".join(parts).split())
        table.add_row(str(e.seq), e.kind, e.time[:19].replace("T", " "),
                      _plain(summary if len(summary) <= 160 else summary[:157] + "..."))
    console.print(table)


@key_app.command("new")
def key_new(name: str = typer.Argument(..., help="Key name (letters, digits, - and _)."),
            home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Create an Ed25519 key (not trusted until `ouro trust grant`)."""
    with open_runtime(home) as rt:
        signer = rt.keyring.new(name)
    if as_json:
        print_json({"name": name, "key_id": signer.key_id, "public": signer.public_hex})
    else:
        console.print(f"key {name}: {signer.key_id}", markup=False)


@key_app.command("list")
def key_list(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Keys in the keyring and their role in the trust policy."""
    from ouroboros.kernel.trust import TRUST_TARGET

    with open_runtime(home, capabilities=False) as rt:
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
    table = _table("name", "key id", "roles")
    table.columns[1].no_wrap = True
    for r in rows:
        table.add_row(r["name"], r["key_id"][:16], ", ".join(r["roles"]) or "untrusted")
    console.print(table)


@trust_app.command("show")
def trust_show(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """The current trust policy."""
    from ouroboros.kernel.trust import TRUST_TARGET, key_names

    with open_runtime(home, capabilities=False) as rt:
        policy = rt.value(TRUST_TARGET)
    if as_json:
        print_json(policy)
        return
    names = key_names(policy)
    console.print(f"root: {', '.join(names[k] for k in policy['root']['keys'])} "
                  f"(threshold {policy['root']['threshold']})", markup=False)
    # One block per delegation, not a seven-column table: type lists and expiry times
    # would be cut with an ellipsis at 80 columns. Values wrap at ", " and a single
    # token longer than the line folds; nothing is elided.
    from rich.table import Table
    from rich.text import Text

    for d in policy["delegations"]:
        block = Table(box=None, show_header=False, padding=(0, 0, 0, 2))
        block.add_column(no_wrap=True)
        block.add_column(overflow="fold")
        for field, value in (
                ("keys", f"{', '.join(names.get(k, k[:12]) for k in d['keys'])} "
                         f"(threshold {d['threshold']})"),
                ("types", ", ".join(d["types"])), ("targets", ", ".join(d["targets"])),
                ("rights", ", ".join(d.get("rights", [])) or "-"),
                ("expires", d.get("expires") or "-")):
            block.add_row(field, Text(value))  # a target glob like a/[ab]* is no markup
        console.print(f"delegation {d['name']}", markup=False, highlight=False)
        console.print(block)
    for kid, r in policy.get("revoked", {}).items():
        console.print(f"revoked: {r.get('name', kid[:12])} ({kid[:12]}) at {r['at']}"
                      + (f": {r['reason']}" if r.get("reason") else ""))


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@trust_app.command("grant")
def trust_grant(keys: str = typer.Argument(..., metavar="KEY[,KEY..]",
                                           help="Key name(s) in the keyring."),
                types: str = typer.Option(..., "--types", metavar="T,..",
                                          help="Comma-separated patch types, e.g. "
                                               "prompt,config."),
                targets: str = typer.Option("*", "--targets", metavar="GLOB,..",
                                            help="Comma-separated target globs, e.g. "
                                                 "'agents/*'."),
                threshold: int = typer.Option(1, "--threshold", min=1, max=16,
                                              help="How many of the keys must sign a patch."),
                expires: str | None = typer.Option(None, "--expires", metavar="WHEN",
                                                   help="30d, 12h, 2027-01-31 or an ISO time."),
                rights: str = typer.Option("", "--rights", metavar="R,..",
                                           help="Extra rights: grant (tool grants) and/or "
                                                "approve (approve pending patches)."),
                name: str | None = typer.Option(None, "--name",
                                                help="Delegation name (default: the key "
                                                     "names joined by '+')."),
                sign_with: list[str] = typer.Option(None, "--sign-with", metavar="NAME",
                                                    help="Root key(s) to sign with; "
                                                         "default root."),
                home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Delegate patch types and targets to one or more keys (a root-signed `trust` patch)."""
    from ouroboros.kernel.clock import SystemClock, parse_when

    names, type_list, target_list, right_list = (_csv(keys), _csv(types), _csv(targets),
                                                 _csv(rights))
    if not names or not type_list or not target_list:
        raise usage("KEY, --types and --targets need at least one entry each")
    unknown_rights = sorted(set(right_list) - {"grant", "approve"})
    if unknown_rights:
        raise usage(f"unknown right(s): {', '.join(unknown_rights)}",
                    "--rights takes grant and/or approve")
    when = None
    if expires is not None:
        try:
            when = parse_when(expires, SystemClock().now())
        except ValueError as e:
            raise usage(f"--expires: {e}", "e.g. 30d, 12h, 2027-01-31") from e
    with open_runtime(home) as rt:
        known = set(rt.registry.types)
        unknown = [t for t in type_list if t not in known]
        if unknown:
            raise usage(f"unknown patch type(s): {', '.join(unknown)}",
                        f"known: {', '.join(sorted(known))}")
        outcome = rt.grant(names, types=type_list, targets=target_list, threshold=threshold,
                           rights=right_list, expires=when, name=name,
                           sign_with=sign_with or None)
    report_outcome(outcome, as_json)


@trust_app.command("revoke")
def trust_revoke(key: str = typer.Argument(..., help="Key name or key id."),
                 reason: str = typer.Option("", "--reason", help="Why (kept in the ledger)."),
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


@patch_app.command("new")
def patch_new(type_: str = typer.Option(..., "--type", metavar="TYPE",
                                        help="Patch type: prompt, policy, routing, config, "
                                             "tools, skill, bytecode, file, trust."),
              target: str = typer.Option(..., "--target", help="What it changes, e.g. "
                                         "agents/support/prompt."),
              value: Path | None = typer.Option(None, "--value", metavar="FILE",
                                                help="The new value: a JSON file."),
              text: Path | None = typer.Option(None, "--text", metavar="FILE",
                                               help="The new value: a UTF-8 text file."),
              json_patch: Path | None = typer.Option(None, "--json-patch", metavar="FILE",
                                                     help="An RFC 6902 JSON Patch file "
                                                          "(for JSON values)."),
              diff: Path | None = typer.Option(None, "--diff", metavar="FILE",
                                               help="A unified diff file (for text values)."),
              delete: bool = typer.Option(False, "--delete", help="Remove the target."),
              reason: str = typer.Option(..., "--reason", help="Why (kept in the ledger)."),
              test: list[str] = typer.Option(None, "--test", metavar="NAME",
                                             help="A registered test the patch must pass "
                                                  "(repeatable)."),
              author: str = typer.Option("operator", "--author",
                                         help="Who proposes it (breakers count per author)."),
              output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                                 help="Write the envelope here (default: "
                                                      "stdout)."),
              home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Write an unsigned patch envelope against the target's current value."""
    from ouroboros.kernel.dsse import envelope_to_dict, new_envelope

    given = [x for x in (value, text, json_patch, diff) if x is not None] + ([1] if delete else [])
    if len(given) != 1:
        raise usage("give exactly one of --value, --text, --json-patch, --diff or --delete")
    if output is not None:
        writable_parent(output, "--output")
    new_value = read_json(value, "value file") if value else (
        read_text(text, "text file") if text else None)
    ops = read_json(json_patch, "JSON Patch file") if json_patch else None
    if ops is not None and not (isinstance(ops, list) and all(isinstance(o, dict) for o in ops)):
        raise usage(f"JSON Patch file {json_patch} must hold a list of operations",
                    'e.g. [{"op": "replace", "path": "/a", "value": 1}]')
    diff_text = read_text(diff, "diff file") if diff else None
    with open_runtime(home) as rt:
        if rt.registry.get(type_) is None:
            raise usage(f"unknown patch type {type_!r}",
                        f"known: {', '.join(sorted(rt.registry.types))}")
        patch = rt.propose(type_, target, reasoning=reason, tests=test or [], author=author,
                           delete=delete, value=new_value, json_patch=ops, diff=diff_text)
    data = json.dumps(envelope_to_dict(new_envelope(patch.canonical())), indent=2) + "\n"
    if len(data) > MAX_INPUT_BYTES:  # ASCII (json.dumps escapes): refuse what `patch sign` cannot read
        raise usage(f"the envelope would be {len(data) >> 20} MiB (base64 adds a third); "
                    f"`patch sign` and `patch submit` read at most {MAX_INPUT_BYTES >> 20} MiB",
                    "make the value smaller (the audit gate's default limit is 1 MB)")
    if output:
        output.write_text(data)
        if as_json:
            print_json({"file": str(output), "patch_hash": patch.hash})
        else:
            console.print(f"wrote {output} ({patch.hash})", markup=False)
    else:
        typer.echo(data, nl=False)  # the envelope is JSON already, --json or not


def _envelope(file: Path) -> Any:
    from ouroboros.interfaces.json_input import loads_strict
    from ouroboros.kernel.dsse import envelope_from_dict
    from ouroboros.kernel.errors import InvalidPatch, UsageError

    data = read_text(file, "envelope file")
    try:
        parsed = loads_strict(data, f"envelope file {file}")
    except UsageError as e:
        raise InvalidPatch(e.message.replace(f"envelope file {file}", "envelope"),
                           e.hint) from None
    return envelope_from_dict(parsed)


@patch_app.command("sign")
def patch_sign(file: Path = typer.Argument(..., help="Envelope file (from `ouro patch new`)."),
               key: str = typer.Option(..., "--key", metavar="NAME", help="Key to sign with."),
               output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                                  help="Write here instead of in place."),
               home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Add a signature to an envelope (in place unless -o)."""
    from ouroboros.kernel.dsse import envelope_to_dict

    envelope = _envelope(file)
    target = output or file
    writable_parent(target, "--output")
    with open_runtime(home) as rt:
        rt.sign(envelope, key)
    target.write_text(json.dumps(envelope_to_dict(envelope), indent=2) + "\n")
    if as_json:
        print_json({"file": str(target), "key": key, "signatures": len(envelope.signatures)})
    else:
        console.print(f"signed {target} with {key} ({len(envelope.signatures)} signature(s))",
                      markup=False)


@patch_app.command("show")
def patch_show(file: Path = typer.Argument(..., help="Envelope file."),
               as_json: bool = JsonOption) -> None:
    """Decode an envelope: the patch and who signed it."""
    envelope = _envelope(file)
    data = {"patch": json.loads(envelope.payload), "signatures": sorted(envelope.signatures)}
    if as_json:
        print_json(data)
    else:
        console.print_json(json.dumps(data), highlight=False)


@patch_app.command("submit")
def patch_submit(file: Path = typer.Argument(..., help="Signed envelope file."),
                 home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Run the gates and apply (exit 0 applied, 3 rejected, 4 pending)."""
    envelope = _envelope(file)
    with open_runtime(home) as rt:
        outcome = rt.submit(envelope)
    report_outcome(outcome, as_json)
