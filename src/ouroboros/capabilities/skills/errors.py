"""Typed errors of the skills capability.

Every failure a caller can act on has its own class, so the CLI can map it to an exit code
and a one-line message, and the control plane can tell a limit from a bug in the tool.
"""

from __future__ import annotations


class SkillError(Exception):
    """Base class of every error this capability raises on purpose."""


class ToolNotFound(SkillError):
    """No tool (or no such version of it) is registered."""


class ToolRolledBack(ToolNotFound):
    """The version exists on disk but a rollback undid the patch that registered it: the
    ledger no longer has it applied, so it is not run."""


class ToolCorrupt(SkillError):
    """A stored version's files no longer match the hashes recorded at registration."""


class MalformedTool(SkillError):
    """A tool directory or spec does not follow the documented format."""


class BuildFailed(SkillError):
    """The compiler or assembler refused the source; `output` holds its diagnostics."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class ToolchainMissing(BuildFailed):
    """The language is known but its toolchain is not usable on this host."""


class JailUnavailable(BuildFailed):
    """Builds cannot be jailed here (no bubblewrap, or a bind would expose a protected path);
    nothing is built unless the operator opts out (see docs/skills.md)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.hint = hint


class ToolRejected(SkillError):
    """A candidate version was refused; nothing of it was written.

    `reason` is a short machine-friendly word (``malformed``, ``build``, ``jail``, ``tests``,
    ``limits``, ``gate``); `detail` is the human explanation (compiler output, the failing
    case, the limit hit).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"tool rejected ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class SandboxError(SkillError):
    """A tool run ended abnormally; the host is unaffected."""


class FuelExhausted(SandboxError):
    """The guest ran more instructions than its fuel allowed."""


class DeadlineExceeded(SandboxError):
    """The guest ran longer than its wall-clock deadline (epoch interruption)."""


class MemoryLimitExceeded(SandboxError):
    """The guest asked for more linear memory than its cap."""


class OutputTooLarge(SandboxError):
    """The guest wrote more than the output cap to stdout or stderr."""


class ToolCrashed(SandboxError):
    """The guest trapped (for example a stack overflow or unreachable) or wrote no JSON."""


class ToolFailed(SandboxError):
    """The guest exited non-zero: by the protocol its stderr is the error message."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class InputRejected(SandboxError):
    """The input does not fit the tool's input schema; the tool was never started.

    A `SandboxError` so every caller that handles a failed call handles this one too; it is
    not counted as a failure of the tool (the caller sent the wrong thing)."""


class OutputRejected(SandboxError):
    """The tool ran but its output does not fit its output schema: a failure of the tool."""
