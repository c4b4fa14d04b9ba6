"""``ouro serve`` and ``ouro token new|list|revoke``: the service layer's commands.

Mounted by main.py with ``serve_cmds.register(app)``. FastAPI and uvicorn are imported
only when ``ouro serve`` runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import HomeOption, JsonOption, console, err_console, print_json
from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.workspace import resolve_home

if TYPE_CHECKING:  # `serve` is mounted for every command; the token store loads on use
    from ouroboros.interfaces.http.tokens import TokenStore
    from ouroboros.kernel.workspace import Workspace

token_app = typer.Typer(cls=OuroGroup, help="Bearer tokens for `ouro serve` (stored as hashes only).",
                        no_args_is_help=True)


def _tokens(home: Path | None) -> tuple[Workspace, TokenStore]:
    from ouroboros.interfaces.http.tokens import TokenStore
    from ouroboros.kernel.workspace import Workspace

    workspace = Workspace.load(resolve_home(home))  # WorkspaceMissing names the fix
    return workspace, TokenStore(workspace.home)


@token_app.command("new")
def token_new(
    name: str = typer.Argument(..., help="Who holds it (e.g. ci-agent, alice)."),
    role: str = typer.Option(..., "--role", help="read | submit | approve | admin."),
    key: str | None = typer.Option(None, "--key", metavar="KEYNAME",
                                   help="Keyring key that signs this token's approvals "
                                        "(approve and admin tokens need one)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Issue a token and print it once; only its hash is kept."""
    workspace, store = _tokens(home)
    if key is not None:
        from ouroboros.kernel.keys import Keyring

        Keyring(workspace.keys_dir).public(key)  # KeyError_ (exit 2) for an unknown key
    token, info = store.new(name, role, key)
    if as_json:
        print_json({**info.public(), "token": token})
        return
    console.print(f"token for [bold]{info.name}[/bold] ({info.role.value}"
                  + (f", approvals signed with key {info.key}" if info.key else "") + "):",
                  highlight=False)
    typer.echo(token)
    err_console.print("shown once: store it now (send it as `Authorization: Bearer <token>`)")


@token_app.command("list")
def token_list(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Tokens by name, role and key (never the tokens themselves)."""
    _, store = _tokens(home)
    items = [t.public() for t in store.list()]
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("no tokens: issue one with `ouro token new NAME --role ROLE`")
        return
    from rich.table import Table

    table = Table("id", "name", "role", "key", "created")
    for t in items:
        table.add_row(t["id"], t["name"], t["role"], t["key"] or "-", t["created"])
    console.print(table)


@token_app.command("revoke")
def token_revoke(ident: str = typer.Argument(..., metavar="NAME_OR_ID",
                                             help="The token's name or id."),
                 home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Revoke a token (a running server refuses it from its next request on)."""
    _, store = _tokens(home)
    info = store.revoke(ident)
    if as_json:
        print_json({"revoked": info.public()})
    else:
        console.print(f"revoked {info.name} ({info.id})", highlight=False)


def serve(
    home: Path | None = HomeOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8750, "--port", min=0, max=65535, help="0 picks a free port."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a non-loopback --host."),
    allowed_host: list[str] = typer.Option([], "--allowed-host",
                                           help="Host header names to answer (repeatable)."),
    schedule: list[str] = typer.Option([], "--schedule", metavar="JOB=SPEC",
                                       help="A job's schedule over ouro.toml's "
                                            "[schedules]: 5m, 'every 1h', @daily, a cron "
                                            "line '*/5 * * * *', or off (repeatable)."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Run no scheduled work."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1024, help="API body cap, bytes."),
    max_otlp: int = typer.Option(8 << 20, "--max-otlp", min=1024,
                                 help="OTLP body cap (after gunzip), bytes."),
    pool: int = typer.Option(8, "--pool", min=1, max=64, help="Runtimes kept open."),
    rate_limit: str = typer.Option("100", "--rate-limit", metavar="PER_SECOND",
                                   help="Requests a second per token (429 past it), or off."),
    rate_burst: int | None = typer.Option(None, "--rate-burst", min=1,
                                          help="Requests a token may make at once "
                                               "(default: twice the rate)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.001, metavar="SECONDS",
                                         help="A request's headers must arrive within "
                                              "this (408, or the connection closed)."),
    body_timeout: float = typer.Option(60.0, "--body-timeout", min=0.001, metavar="SECONDS",
                                       help="A request's body must arrive within this "
                                            "after its headers (408)."),
    keep_alive_timeout: float = typer.Option(5.0, "--keep-alive-timeout", min=0.001,
                                             metavar="SECONDS",
                                             help="An idle kept-alive connection is closed "
                                                  "after this."),
    max_connections: int = typer.Option(1000, "--max-connections", min=1,
                                        help="Open connections at most (one more is "
                                             "answered 503)."),
    max_header_bytes: int = typer.Option(64 << 10, "--max-header-bytes", min=1024,
                                         help="A request's line and headers at most, "
                                              "bytes (431 past it)."),
    write_timeout: float = typer.Option(60.0, "--write-timeout", min=0.001, metavar="SECONDS",
                                        help="A client that takes none of an answer for "
                                             "this long is disconnected."),
    log_level: Literal["critical", "error", "warning", "info", "debug"] = typer.Option(
        "warning", "--log-level", help="uvicorn's log level."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    as_json: bool = JsonOption,
) -> None:
    """Serve the API, the OTLP receiver and scheduled work until Ctrl-C / SIGTERM."""
    from dataclasses import replace

    from ouroboros.interfaces.http.app import ServerSettings
    from ouroboros.interfaces.http.server import serve as run
    from ouroboros.storage.files import lock_timeout

    # Read once before listening: a malformed OURO_LOCK_TIMEOUT is the operator's to fix
    # now (exit 2), not a 400 for every client whose request meets a lock later.
    lock_timeout()
    jobs: dict[str, str] = {}
    for item in schedule:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise UsageError(f"--schedule {item!r} is not JOB=SPEC", "e.g. --schedule tick=5m")
        jobs[name.strip()] = spec.strip()
    from ouroboros.interfaces.http.ratelimit import RateLimit

    settings = ServerSettings(pool_size=pool, scheduler=not no_scheduler,
                              schedule=jobs or None,
                              rate_limit=RateLimit.parse(rate_limit, rate_burst),
                              header_timeout=header_timeout,
                              keep_alive_timeout=keep_alive_timeout,
                              max_connections=max_connections,
                              max_header_bytes=max_header_bytes,
                              write_timeout=write_timeout)
    settings = replace(settings, limits=replace(settings.limits, max_body_bytes=max_body,
                                                max_otlp_bytes=max_otlp,
                                                body_timeout=body_timeout))
    where = resolve_home(home)

    def ready(url: str) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"listening": url, "home": str(where)}) + "\n")
            sys.stdout.flush()
        else:
            console.print(f"serving {where} at [bold]{url}[/bold] (API docs at {url}/docs); "
                          "Ctrl-C stops", highlight=False)

    run(where, host=host, port=port, allow_remote=allow_remote, allowed=allowed_host,
        settings=settings, log_level=log_level, access_log=access_log, ready=ready)


def register(app: typer.Typer) -> None:
    """Mount on a bare Typer app (main.py mounts `token` lazily and `serve` eagerly)."""
    app.add_typer(token_app, name="token")
    app.command("serve")(serve)
