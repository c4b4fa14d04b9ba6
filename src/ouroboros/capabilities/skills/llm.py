"""The skills capability's view of the LLM client (`ouroboros.capabilities.llm`).

Kept as a module of its own so callers import their provider from the capability they use;
everything here is the shared client's.
"""

from __future__ import annotations

from ouroboros.capabilities.llm import (
    Budget,
    BudgetExceeded,
    ChatReply,
    LLMConfig,
    LLMError,
    LLMNotConfigured,
    LLMProvider,
    MalformedAnswer,
    MeteredProvider,
    OpenAICompatibleProvider,
    ToolCall,
    provider_from_config,
)
from ouroboros.capabilities.llm.errors import ENV_HINT

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
