"""Where the endpoint is and what one request may cost.

First match wins: an explicit mapping (the workspace's ``config/skills/llm`` value), then
OURO_LLM_BASE_URL / OURO_LLM_MODEL / OURO_LLM_API_KEY, then OPENAI_BASE_URL / OPENAI_MODEL /
OPENAI_API_KEY. The numbers (deadline, retries, size cap) have the same three sources.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import LLMError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class LLMConfig:
    """An endpoint and the bounds every request to it keeps.

    Attributes:
        timeout_s: the overall deadline of one request, connect to last byte (not per read).
        max_retries: further attempts after a 429, a 5xx or a refused connection.
        backoff_s: the first retry's base delay; it doubles, with full jitter, and a
            Retry-After header is honoured up to `max_backoff_s`.
        max_response_bytes: a body larger than this is an error; it is not read further.
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 120.0
    temperature: float | None = None  # None: the server's default (reasoning models refuse others)
    max_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 20.0
    max_response_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name in ("timeout_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "timeout_s" and value == 0):
                raise LLMError(f"LLM setting {name} must be a positive number, not {value!r}")
        if self.max_retries < 0 or self.max_retries > 10:
            raise LLMError("LLM setting max_retries must be between 0 and 10")
        if self.max_response_bytes < 1024:
            raise LLMError("LLM setting max_response_bytes must be at least 1024")

    @classmethod
    def resolve(
        cls, config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> LLMConfig:
        """Merge explicit settings with the environment (see the module docstring)."""
        env = os.environ if env is None else env
        config = config or {}

        def pick(key: str, *names: str) -> str | None:
            value = config.get(key)
            if value is not None and value != "":
                return str(value)
            for name in names:
                if env.get(name):
                    return env[name]
            return None

        numbers: dict[str, Any] = {}
        try:
            for key, var, kind in (("timeout_s", "OURO_LLM_TIMEOUT", float),
                                   ("temperature", "OURO_LLM_TEMPERATURE", float),
                                   ("max_retries", "OURO_LLM_MAX_RETRIES", int),
                                   ("backoff_s", "OURO_LLM_BACKOFF", float),
                                   ("max_response_bytes", "OURO_LLM_MAX_RESPONSE_BYTES", int)):
                raw = pick(key, var)
                if raw is not None:
                    numbers[key] = kind(raw)
        except ValueError as e:
            raise LLMError(f"OURO_LLM_TIMEOUT / OURO_LLM_TEMPERATURE and the other LLM limits "
                           f"must be numbers: {e}") from e
        return cls(
            base_url=pick("base_url", "OURO_LLM_BASE_URL", "OPENAI_BASE_URL"),
            model=pick("model", "OURO_LLM_MODEL", "OPENAI_MODEL"),
            api_key=pick("api_key", "OURO_LLM_API_KEY", "OPENAI_API_KEY"),
            **numbers,
        )

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

    @property
    def endpoint(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")
