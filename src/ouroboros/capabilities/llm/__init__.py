"""One client for every OpenAI-compatible model the capabilities ask, and the rules for
what comes back: deadlines, retries, size caps, validated shapes, budgets, untrusted text.

Names are imported on first use (PEP 562): a command that needs one helper must not pay
for the HTTP client (httpcore, pydantic) to get it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .budget import Budget, MeteredProvider
    from .client import LLMProvider, OpenAICompatibleProvider, provider_from_config
    from .config import LLMConfig
    from .errors import (
        AnswerTooLarge,
        BudgetExceeded,
        LLMError,
        LLMHTTPError,
        LLMNotConfigured,
        LLMTimeout,
        LLMUnreachable,
        MalformedAnswer,
    )
    from .untrusted import FENCE_RULE, escape_markdown, fence
    from .wire import ChatReply, ToolCall, Usage

_WHERE = {
    "Budget": "budget", "MeteredProvider": "budget",
    "LLMProvider": "client", "OpenAICompatibleProvider": "client",
    "provider_from_config": "client",
    "LLMConfig": "config",
    "AnswerTooLarge": "errors", "BudgetExceeded": "errors", "LLMError": "errors",
    "LLMHTTPError": "errors", "LLMNotConfigured": "errors", "LLMTimeout": "errors",
    "LLMUnreachable": "errors", "MalformedAnswer": "errors",
    "FENCE_RULE": "untrusted", "escape_markdown": "untrusted", "fence": "untrusted",
    "ChatReply": "wire", "ToolCall": "wire", "Usage": "wire",
}

__all__ = [
    "FENCE_RULE",
    "AnswerTooLarge",
    "Budget",
    "BudgetExceeded",
    "ChatReply",
    "LLMConfig",
    "LLMError",
    "LLMHTTPError",
    "LLMNotConfigured",
    "LLMProvider",
    "LLMTimeout",
    "LLMUnreachable",
    "MalformedAnswer",
    "MeteredProvider",
    "OpenAICompatibleProvider",
    "ToolCall",
    "Usage",
    "escape_markdown",
    "fence",
    "provider_from_config",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ouroboros.capabilities.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
