"""Skills: versioned WASM tools with tests and lineage, run in a sandbox.

The public API is `SkillStore` and the types below; see docs/skills.md.
"""

from .errors import (
    BuildFailed,
    DeadlineExceeded,
    FuelExhausted,
    InputRejected,
    MalformedTool,
    MemoryLimitExceeded,
    OutputRejected,
    OutputTooLarge,
    SandboxError,
    SkillError,
    ToolchainMissing,
    ToolCorrupt,
    ToolCrashed,
    ToolFailed,
    ToolNotFound,
    ToolRejected,
    ToolRolledBack,
)
from .governance import ToolPending, attach_tools, open_store, register
from .sandbox import Limits
from .spec import TestCase, ToolSpec, load_tool_dir
from .store import RunResult, SkillStore, ToolVersion
from .testing import CaseResult, TestReport

__all__ = [
    "BuildFailed",
    "CaseResult",
    "DeadlineExceeded",
    "FuelExhausted",
    "InputRejected",
    "Limits",
    "MalformedTool",
    "MemoryLimitExceeded",
    "OutputRejected",
    "OutputTooLarge",
    "RunResult",
    "SandboxError",
    "SkillError",
    "SkillStore",
    "TestCase",
    "TestReport",
    "ToolCorrupt",
    "ToolCrashed",
    "ToolFailed",
    "ToolNotFound",
    "ToolPending",
    "ToolRejected",
    "ToolRolledBack",
    "ToolSpec",
    "ToolVersion",
    "ToolchainMissing",
    "attach_tools",
    "load_tool_dir",
    "open_store",
    "register",
]
