"""LLM providers: one small interface, and a client for any OpenAI-compatible endpoint.

OpenAI, vLLM, Ollama, llama.cpp's server and LM Studio all speak the chat-completions
protocol, so one client (the official `openai` SDK pointed at a base URL) covers them.
The rest of the skills code talks to `LLMProvider` only, so tests and other backends
swap in without touching callers.

Configuration, first match wins: an explicit mapping (workspace config), then
OURO_LLM_BASE_URL / OURO_LLM_MODEL / OURO_LLM_API_KEY, then OPENAI_BASE_URL /
OPENAI_MODEL / OPENAI_API_KEY.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 120.0
    temperature: float | None = None  # None: the server's default (reasoning models refuse others)

    @classmethod
    def resolve(
        cls, config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> LLMConfig:
        """Merge explicit settings with the environment (see the module docstring)."""
        env = os.environ if env is None else env
        config = config or {}

        def pick(key: str, *names: str) -> str | None:
            value = config.get(key)
            if value:
                return str(value)
            for name in names:
                if env.get(name):
                    return env[name]
            return None

        timeout = pick("timeout_s", "OURO_LLM_TIMEOUT")
        temperature = pick("temperature", "OURO_LLM_TEMPERATURE")
        try:
            return cls(
                base_url=pick("base_url", "OURO_LLM_BASE_URL", "OPENAI_BASE_URL"),
                model=pick("model", "OURO_LLM_MODEL", "OPENAI_MODEL"),
                api_key=pick("api_key", "OURO_LLM_API_KEY", "OPENAI_API_KEY"),
                timeout_s=float(timeout) if timeout else 120.0,
                temperature=float(temperature) if temperature else None,
            )
        except ValueError as e:
            raise LLMError(f"OURO_LLM_TIMEOUT / OURO_LLM_TEMPERATURE must be numbers: {e}") from e

    def missing(self) -> list[str]:
        """What must still be set before a request can be made."""
        missing = []
        if not self.base_url and not self.api_key:
            missing.append("OURO_LLM_BASE_URL")
        if not self.model:
            missing.append("OURO_LLM_MODEL")
        return missing

    @property
    def configured(self) -> bool:
        return not self.missing()


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; `arguments` is parsed JSON (an object)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(frozen=True)
class ChatReply:
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation before tool results."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in self.tool_calls
            ]
        return msg


class LLMProvider(Protocol):
    @property
    def model(self) -> str: ...

    def chat(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> ChatReply: ...


class OpenAICompatibleProvider:
    """Chat completions through the official `openai` SDK against any compatible server."""

    def __init__(self, config: LLMConfig) -> None:
        if not config.configured:
            raise LLMNotConfigured(config.missing())
        import openai

        assert config.model is not None
        self._config = config
        self._model = config.model
        # Local servers ignore the key but the SDK insists on one.
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=config.api_key or "not-needed",
            timeout=config.timeout_s, max_retries=1,
        )

    @property
    def model(self) -> str:
        return self._model

    def chat(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> ChatReply:
        import openai

        kwargs: dict[str, Any] = {"model": self._model, "messages": list(messages)}
        if tools:
            kwargs["tools"] = list(tools)
        if self._config.temperature is not None:
            kwargs["temperature"] = self._config.temperature
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as e:
            raise LLMError(f"LLM endpoint answered HTTP {e.status_code}: {_short(str(e))}") from e
        except openai.APIConnectionError as e:
            where = self._config.base_url or "api.openai.com"
            raise LLMError(f"cannot reach the LLM endpoint at {where}: {_short(str(e))}") from e
        except openai.OpenAIError as e:
            raise LLMError(f"LLM request failed: {_short(str(e))}") from e
        if not response.choices:
            raise LLMError("the LLM endpoint returned no choices")
        choice = response.choices[0]
        message = choice.message
        calls = []
        for call in message.tool_calls or []:
            fn = getattr(call, "function", None)
            if fn is None:  # a custom (non-function) tool call: we never offer those
                continue
            calls.append(ToolCall(call.id, fn.name, _parse_arguments(fn.arguments),
                                  fn.arguments or "{}"))
        return ChatReply(message.content or "", calls, choice.finish_reason)


def _parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool-call arguments as an object; malformed JSON becomes {"_invalid": raw}."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_invalid": raw}
    return value if isinstance(value, dict) else {"_invalid": raw}


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def provider_from_config(
    config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> OpenAICompatibleProvider:
    """The configured provider, or LLMNotConfigured saying what to set."""
    return OpenAICompatibleProvider(LLMConfig.resolve(config, env))
