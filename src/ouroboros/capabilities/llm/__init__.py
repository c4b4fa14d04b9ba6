"""One client for every OpenAI-compatible model the capabilities ask, and the rules for
what comes back: deadlines, retries, size caps, validated shapes, budgets, untrusted text."""

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
from .untrusted import FENCE_RULE, escape_markdown, fence, markers_in
from .wire import ChatReply, ToolCall, Usage

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
    "markers_in",
    "provider_from_config",
]
