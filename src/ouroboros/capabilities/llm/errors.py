"""Typed errors of the LLM client: every way an endpoint can fail us has its own class.

All of them are `LLMError`, so a caller that only wants "the model could not help" catches
one class; the CLI maps each to exit 1 with a one-line message and never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

ENV_HINT = (
    "set OURO_LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama) and OURO_LLM_MODEL, "
    "plus OURO_LLM_API_KEY if the endpoint needs one (OPENAI_* variables also work)"
)


class LLMError(RuntimeError):
    """The endpoint failed or answered with something unusable."""


class LLMNotConfigured(LLMError):
    """No endpoint is configured; the message says what to set."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(f"no LLM endpoint configured (missing {', '.join(missing)}): {ENV_HINT}")


class LLMUnreachable(LLMError):
    """The connection could not be made or broke before an answer came."""


class LLMHTTPError(LLMError):
    """The endpoint answered with an HTTP error status (after any retries)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"LLM endpoint answered HTTP {status}: {message}")
        self.status = status


class LLMTimeout(LLMError):
    """The overall deadline of the request (or of the task) passed: slow, dripping or hung."""


class AnswerTooLarge(LLMError):
    """The response body passed the size cap; it was not read further."""


class MalformedAnswer(LLMError):
    """A 200 answer that is not the chat-completions shape we accept."""


class BudgetExceeded(LLMError):
    """A task used up one of its limits (tokens, time, calls, creates, mutates, turns)."""

    def __init__(self, budget: str, used: float, limit: float, detail: str = "") -> None:
        self.budget, self.used, self.limit = budget, used, limit
        text = f"budget exceeded: {budget} {used:g} of {limit:g}"
        super().__init__(f"{text} ({detail})" if detail else text)
