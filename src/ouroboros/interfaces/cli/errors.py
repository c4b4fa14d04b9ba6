"""One error path for every ``ouro`` command: typed errors → exit code, text or JSON.

A command signals failure by raising: an ``OuroError`` from the kernel (``UsageError``
exit 2, ``IntegrityError`` exit 1, ``PatchRejected`` exit 3), a ``CliError`` with an
explicit exit code, or a click usage error (bad option, missing argument). ``describe``
turns any of them into an ``ErrorReport``; ``main.run`` prints it as one line on stderr,
or under ``--json`` as ``{"error": {...}}`` on stdout, and exits with its code. An
exception nobody expected becomes the ``internal`` code with exit 1 (the traceback only
with ``OURO_DEBUG=1``), so no traceback ever reaches a user.

The codes (stable; scripts may match on them) are documented in docs/cli.md.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from typing import Any

from typer._click import exceptions as click_exceptions

from ouroboros.kernel.errors import (
    IntegrityError,
    InvalidPatch,
    KeyError_,
    NotFound,
    OuroError,
    PatchRejected,
    UsageError,
    WorkspaceMissing,
)
from ouroboros.storage.ledger import LedgerUnavailable

#: Exit codes (DESIGN.md): 0 ok, 1 failure or integrity, 2 usage, 3 rejected, 4 pending.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED, EXIT_PENDING = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

#: code → (exit code, what it means); the table docs/cli.md shows.
CODES: dict[str, tuple[int, str]] = {
    "usage": (EXIT_USAGE, "bad option, argument or input value"),
    "not_found": (EXIT_USAGE, "the named thing (file, tool, patch, proposal, event) does not exist"),
    "rolled_back": (EXIT_USAGE, "the named tool version exists, but a rollback undid it"),
    "workspace_missing": (EXIT_USAGE, "no workspace at --home / $OURO_HOME / ./.ouro"),
    "invalid_patch": (EXIT_USAGE, "not a well-formed patch or envelope"),
    "key": (EXIT_USAGE, "unknown key name or unreadable key file"),
    "integrity": (EXIT_FAILURE, "the ledger, a database or a stored file does not verify"),
    "failure": (EXIT_FAILURE, "the operation ran and failed (a tool trapped, a service is down)"),
    "rejected": (EXIT_REJECTED, "a gate rejected the change; the rejection is logged"),
    "pending": (EXIT_PENDING, "the change waits for approval"),
    "interrupted": (EXIT_INTERRUPTED, "stopped by Ctrl-C"),
    "internal": (EXIT_FAILURE, "a bug in ouro: rerun with OURO_DEBUG=1 and report it"),
}

_CODE_FOR_EXIT = {EXIT_FAILURE: "failure", EXIT_USAGE: "usage", EXIT_REJECTED: "rejected",
                  EXIT_PENDING: "pending"}


class CliError(OuroError):
    """An error raised by a command with an explicit exit code and (optional) code.

    Raise it for anything the kernel's classes do not name: ``CliError("no tool 'x'",
    "list them with `ouro tool list`", exit_code=2, code="not_found")``.
    """

    def __init__(self, message: str, hint: str = "", *, exit_code: int = EXIT_USAGE,
                 code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
        self.code = code or _CODE_FOR_EXIT.get(exit_code, "failure")
        self.details = details or {}


def usage(message: str, hint: str = "") -> CliError:
    """A usage error (exit 2): ``raise usage("--days must be at most 3650")``."""
    return CliError(message, hint, exit_code=EXIT_USAGE, code="usage")


def not_found(message: str, hint: str = "") -> CliError:
    return CliError(message, hint, exit_code=EXIT_USAGE, code="not_found")


def failure(message: str, hint: str = "") -> CliError:
    """The operation ran and failed (exit 1)."""
    return CliError(message, hint, exit_code=EXIT_FAILURE, code="failure")


@dataclass(frozen=True)
class ErrorReport:
    code: str
    message: str
    hint: str
    exit_code: int
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint,
                                "exit_code": self.exit_code}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def _ouro_code(e: OuroError) -> str:
    own = getattr(e, "code", None)
    if isinstance(own, str) and own:
        return own
    for cls, code in ((WorkspaceMissing, "workspace_missing"), (NotFound, "not_found"),
                      (InvalidPatch, "invalid_patch"), (KeyError_, "key"),
                      (IntegrityError, "integrity"), (PatchRejected, "rejected"),
                      (UsageError, "usage")):
        if isinstance(e, cls):
            return code
    return _CODE_FOR_EXIT.get(e.exit_code, "failure")


def _click_hint(e: click_exceptions.ClickException) -> str:
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        return f"see `{ctx.command_path} --help`"
    return "see `ouro --help`"


def describe(e: BaseException) -> ErrorReport:
    """The report for any exception a command let escape (never raises)."""
    if isinstance(e, OuroError):
        details: dict[str, Any] = {}
        if isinstance(e, PatchRejected):
            details = {"patch_hash": e.patch_hash, "stage": e.stage, "reason": e.reason}
        elif isinstance(e, IntegrityError) and e.seq is not None:
            details = {"seq": e.seq}
        elif isinstance(e, CliError):
            details = dict(e.details)
        return ErrorReport(_ouro_code(e), e.message, e.hint, int(e.exit_code), details)
    if isinstance(e, click_exceptions.UsageError):
        return ErrorReport("usage", e.format_message(), _click_hint(e), EXIT_USAGE, {})
    if isinstance(e, click_exceptions.ClickException):
        return ErrorReport("usage", e.format_message(), _click_hint(e), EXIT_USAGE, {})
    if isinstance(e, KeyboardInterrupt):
        return ErrorReport("interrupted", "interrupted", "", EXIT_INTERRUPTED, {})
    if isinstance(e, LedgerUnavailable):  # the PostgreSQL ledger: down, refused, missing
        code = e.kind if e.kind in CODES else "failure"
        return ErrorReport(code, e.message, e.hint, CODES[code][0], {})
    if isinstance(e, sqlite3.DatabaseError):
        # A database the kernel cannot read is damaged or locked: no command can fix that
        # by retrying with other arguments, so it is an integrity failure, not a bug.
        return ErrorReport("integrity", f"the workspace database cannot be read: {e}",
                           "restore the workspace from a backup; `ouro verify` names the "
                           "first bad event once it opens", EXIT_FAILURE, {})
    skill_errors = sys.modules.get("ouroboros.capabilities.skills.errors")
    if skill_errors is not None and isinstance(e, skill_errors.ToolCorrupt):
        # a version's files or meta.json edited on disk after registration: not a bug
        return ErrorReport("integrity", str(e), "delete that version directory: the "
                           "workspace reinstalls it from its blobs", EXIT_FAILURE, {})
    if isinstance(e, MemoryError):
        return ErrorReport("failure", "out of memory", "give the command a smaller input",
                           EXIT_FAILURE, {})
    return ErrorReport("internal", f"unexpected error: {type(e).__name__}: {e}",
                       "this is a bug in ouro; rerun with OURO_DEBUG=1 for the traceback "
                       "and report it", EXIT_FAILURE, {})
