"""The governed kernel: signed patches, gates, a hash-chained ledger, replay, rollback."""

from ouroboros.kernel.canonical import ABSENT, canonical_bytes, content_hash, hash_bytes
from ouroboros.kernel.clock import Clock, ManualClock, SystemClock
from ouroboros.kernel.errors import (
    IntegrityError,
    InvalidPatch,
    NotFound,
    OuroError,
    PatchRejected,
    UsageError,
    WorkspaceMissing,
)
from ouroboros.kernel.gates import Gate, GateResult, Submission
from ouroboros.kernel.ledger import Event, VerifyReport
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.runtime import ReplayReport, Runtime
from ouroboros.kernel.submission import SubmitOutcome
from ouroboros.kernel.types import PatchType, TestContext, TestOutcome, TypeRegistry

__all__ = [
    "ABSENT", "Clock", "Event", "Gate", "GateResult", "IntegrityError", "InvalidPatch",
    "ManualClock", "NotFound", "OuroError", "Patch", "PatchRejected", "PatchType",
    "ReplayReport", "Runtime", "Submission", "SubmitOutcome", "SystemClock", "TestContext",
    "TestOutcome", "TypeRegistry", "UsageError", "VerifyReport", "WorkspaceMissing", "canonical_bytes",
    "content_hash", "hash_bytes",
]
