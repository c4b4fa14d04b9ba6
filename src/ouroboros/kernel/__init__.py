"""The governed kernel: signed patches, gates, a hash-chained ledger, replay, rollback.

Names are imported on first use (PEP 562), so ``from ouroboros.kernel.errors import …``
or a CLI's ``--help`` does not pay for the whole kernel (cryptography, jsonschema, Rego).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "ABSENT": "canonical", "canonical_bytes": "canonical", "content_hash": "canonical",
    "hash_bytes": "canonical",
    "Clock": "clock", "ManualClock": "clock", "SystemClock": "clock",
    "IntegrityError": "errors", "InvalidPatch": "errors", "NotFound": "errors",
    "OuroError": "errors", "PatchRejected": "errors", "UsageError": "errors",
    "WorkspaceMissing": "errors",
    "Gate": "gates", "GateResult": "gates", "Submission": "gates",
    "Event": "ledger", "VerifyReport": "ledger",
    "Patch": "patch",
    "ReplayReport": "runtime", "Runtime": "runtime", "SubmitOutcome": "submission",
    "PatchType": "types", "TestContext": "types", "TestOutcome": "types",
    "TypeRegistry": "types",
}

__all__ = [
    "ABSENT", "Clock", "Event", "Gate", "GateResult", "IntegrityError", "InvalidPatch",
    "ManualClock", "NotFound", "OuroError", "Patch", "PatchRejected", "PatchType",
    "ReplayReport", "Runtime", "Submission", "SubmitOutcome", "SystemClock", "TestContext",
    "TestOutcome", "TypeRegistry", "UsageError", "VerifyReport", "WorkspaceMissing",
    "canonical_bytes", "content_hash", "hash_bytes",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ouroboros.kernel' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ouroboros.kernel.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
