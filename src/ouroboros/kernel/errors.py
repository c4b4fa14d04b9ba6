"""Typed kernel errors. Each carries the CLI exit code and a hint on what to do."""

from __future__ import annotations


class OuroError(Exception):
    """Base of every error a user can meet; ``exit_code`` follows DESIGN.md."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(OuroError):
    exit_code = 2


class WorkspaceMissing(UsageError):
    pass


class InvalidPatch(UsageError):
    """The input is not a well-formed patch or envelope."""


class NotFound(UsageError):
    pass


class KeyError_(UsageError):
    """A keyring problem (unknown key name, bad key file)."""


class IntegrityError(OuroError):
    """The ledger does not verify."""

    exit_code = 1

    def __init__(self, message: str, seq: int | None = None, hint: str = "") -> None:
        super().__init__(message, hint)
        self.seq = seq


class PatchRejected(OuroError):
    """A gate rejected the patch; the rejection is already in the ledger."""

    exit_code = 3

    def __init__(self, patch_hash: str, stage: str, reason: str) -> None:
        super().__init__(f"rejected at {stage}: {reason}")
        self.patch_hash = patch_hash
        self.stage = stage
        self.reason = reason
