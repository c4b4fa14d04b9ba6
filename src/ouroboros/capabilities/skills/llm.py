"""The skills capability's view of the LLM client (`ouroboros.capabilities.llm`).

Kept as a module of its own so callers import their provider from the capability they use;
everything here is the shared client's. The errors are imported at once (every `ouro tool`
command catches them); the client (httpcore, pydantic) on first use of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ouroboros.capabilities.llm.errors import (
    ENV_HINT,
    BudgetExceeded,
    LLMError,
    LLMNotConfigured,
    MalformedAnswer,
)

if TYPE_CHECKING:
    from ouroboros.capabilities.llm import (
        Budget,
        ChatReply,
        LLMConfig,
        LLMProvider,
        MeteredProvider,
        OpenAICompatibleProvider,
        ToolCall,
        provider_from_config,
    )

_LAZY = frozenset({"Budget", "ChatReply", "LLMConfig", "LLMProvider", "MeteredProvider",
                   "OpenAICompatibleProvider", "ToolCall", "provider_from_config"})

__all__ = [
    "ENV_HINT",
    "Budget",
    "BudgetExceeded",
    "ChatReply",
    "LLMConfig",
    "LLMError",
    "LLMNotConfigured",
    "LLMProvider",
    "MalformedAnswer",
    "MeteredProvider",
    "OpenAICompatibleProvider",
    "ToolCall",
    "provider_from_config",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ouroboros.capabilities import llm

    value = getattr(llm, name)
    globals()[name] = value
    return value
