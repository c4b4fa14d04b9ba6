"""Any exception a tool call raises, as an MCP tool error a model can read and act on.

MCP wants a failed *call* reported inside the result (``isError: true``) so the model sees
it and can correct itself; only protocol problems are JSON-RPC errors. `describe` names the
error with a stable code, a message and a hint; an exception nobody anticipated is logged
with its traceback and reported as ``internal`` without its text (which could tell a caller
about the server's inside).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ouroboros.mcp")


@dataclass(frozen=True)
class CallError:
    code: str
    message: str
    hint: str = ""
    details: dict[str, Any] | None = None

    def text(self) -> str:
        return f"error ({self.code}): {self.message}" + (f"\nhint: {self.hint}"
                                                        if self.hint else "")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return {"error": body}


def _validation(e: Any) -> CallError:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
    return CallError("invalid_arguments", "; ".join(parts) + more,
                     "the tool's inputSchema (tools/list) says what it takes")


def describe(e: BaseException) -> CallError:
    """The tool error for ``e`` (never raises)."""
    from pydantic import ValidationError

    from ouroboros.capabilities.improve.proposals.diffs import DiffError
    from ouroboros.capabilities.improve.proposals.proposal import ProposalError
    from ouroboros.capabilities.improve.proposals.repo import GitError
    from ouroboros.capabilities.skills import errors as skill
    from ouroboros.capabilities.skills.authoring import AuthoringFailed
    from ouroboros.capabilities.skills.governance import ToolPending
    from ouroboros.capabilities.skills.llm import LLMError
    from ouroboros.interfaces.http.services import Busy
    from ouroboros.kernel.errors import OuroError
    from ouroboros.storage.ledger import LedgerUnavailable

    if isinstance(e, ValidationError):
        return _validation(e)
    if isinstance(e, skill.ToolRolledBack):
        return CallError("rolled_back", str(e), "run the current version (no version) or "
                         "one the ledger still has applied")
    if isinstance(e, skill.ToolNotFound):
        return CallError("not_found", str(e), "list_tools or search_tools shows what exists")
    if isinstance(e, skill.InputRejected):
        return CallError("invalid_input", str(e),
                         "describe_tool shows the tool's input_schema and examples")
    if isinstance(e, skill.SandboxError):
        return CallError("tool_failed", f"{type(e).__name__}: {e}",
                         "the tool ran and failed; nothing was changed",
                         {"kind": type(e).__name__})
    if isinstance(e, skill.ToolCorrupt):
        return CallError("integrity", str(e), "an operator must restore the version")
    if isinstance(e, ToolPending):
        return CallError("pending", str(e), "a person approves it with `ouro approve "
                         f"{e.patch_hash[7:19]}`", {"patch_hash": e.patch_hash})
    if isinstance(e, skill.ToolRejected):
        return CallError("rejected", str(e), "nothing was registered",
                         {"reason": e.reason})
    if isinstance(e, AuthoringFailed):
        return CallError("authoring_failed", str(e),
                         "nothing was registered; every attempt is in the tool's history")
    if isinstance(e, LLMError):
        return CallError("llm_error", str(e), "nothing half-done was registered")
    if isinstance(e, skill.SkillError):
        return CallError("rejected", str(e))
    if isinstance(e, DiffError):
        return CallError("invalid_arguments", f"diff: {e}", "send a unified diff "
                         "(`git diff` or `diff -u`) against the target's main")
    if isinstance(e, ProposalError):
        return CallError("conflict", str(e), "see list_proposals")
    if isinstance(e, GitError):
        return CallError("unavailable", str(e), "retry later")
    if isinstance(e, Busy):
        return CallError("unavailable", e.message, e.hint)
    if isinstance(e, OuroError | LedgerUnavailable):  # (the PostgreSQL ledger's failures)
        from ouroboros.interfaces.cli.errors import describe as cli_describe

        report = cli_describe(e)
        return CallError(report.code, report.message, report.hint, report.details or None)
    if isinstance(e, ValueError):  # authoring refuses bad names and languages this way
        return CallError("invalid_arguments", str(e)[:500])
    if isinstance(e, MemoryError):
        return CallError("failure", "out of memory", "send a smaller input")
    log.exception("unexpected error in an MCP tool call", exc_info=e)
    return CallError("internal", "the server failed to handle this call",
                     "the server's log has the details")
