"""A client for any OpenAI-compatible chat endpoint that a hostile server cannot hang or crash.

OpenAI, vLLM, Ollama, llama.cpp's server and LM Studio all speak chat completions, so one
client covers them. What it guarantees, whatever the server does:

- an overall deadline per request (`LLMConfig.timeout_s`), and per task when the caller
  passes one (`deadline=`), not a per-read timeout: a dripping or hung server ends in
  `LLMTimeout` on time;
- bounded retries with exponential backoff and full jitter on 429, 5xx and refused
  connections, honouring Retry-After but never past the deadline;
- a response-size cap (`AnswerTooLarge`), and every answer validated by the pydantic models
  of `wire.py` (`MalformedAnswer`);
- every failure an `LLMError` with a one-line message; the API key goes in a header and
  nowhere else (never in a message, a log line or an error).

The rest of the code talks to the `LLMProvider` protocol only, so tests and other backends
swap in without touching callers.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .config import LLMConfig
from .errors import LLMError, LLMHTTPError, LLMNotConfigured, LLMTimeout, LLMUnreachable
from .transport import post
from .wire import ChatReply, error_message, parse_completion

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class LLMProvider(Protocol):
    @property
    def model(self) -> str: ...

    def chat(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
        *, deadline: float | None = None,
    ) -> ChatReply: ...


class OpenAICompatibleProvider:
    """Chat completions over HTTP against any compatible server (see the module docstring)."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        if not config.configured:
            raise LLMNotConfigured(config.missing())
        assert config.model is not None
        self.config = config
        self._model = config.model
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.attempts = 0  # HTTP requests made, retries included (for tests and stats)

    @property
    def model(self) -> str:
        return self._model

    def chat(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
        *, deadline: float | None = None,
    ) -> ChatReply:
        """One completion.

        Args:
            deadline: a `time.monotonic()` value the whole call (retries included) must end
                by; the request's own `timeout_s` applies too, whichever comes first.

        Raises:
            LLMTimeout, LLMUnreachable, LLMHTTPError, AnswerTooLarge, MalformedAnswer.
        """
        payload: dict[str, Any] = {"model": self._model, "messages": list(messages)}
        if tools:
            payload["tools"] = list(tools)
        if self.config.temperature is not None:
            payload["temperature"] = self.config.temperature
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        end = time.monotonic() + self.config.timeout_s
        if deadline is not None:
            end = min(end, deadline)
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self.config.api_key or 'not-needed'}"}
        url = f"{self.config.endpoint}/chat/completions"
        last: LLMError | None = None
        hint: float | None = None  # the server's Retry-After, if it sent one
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                wait = self._backoff(attempt, hint)
                if time.monotonic() + wait >= end:
                    break  # waiting would pass the deadline: the last error stands
                self._sleep(wait)
            self.attempts += 1
            try:
                response = post(url, body, headers, deadline=end,
                                max_bytes=self.config.max_response_bytes)
            except LLMUnreachable as e:
                last = LLMUnreachable(f"cannot reach the LLM endpoint at {self.config.endpoint}:"
                                      f" {_short(str(e))}")
                hint = None
                continue
            if response.status == 200:
                return parse_completion(response.body, request_chars=len(body))
            error = LLMHTTPError(response.status, _short(error_message(response.body)))
            if response.status not in RETRY_STATUSES:
                raise error
            last, hint = error, _retry_after(response.headers)
        if last is None:
            raise LLMTimeout("the deadline passed before the LLM endpoint could be asked")
        raise last

    def _backoff(self, attempt: int, hint: float | None) -> float:
        """Full jitter over an exponential ceiling; a server's Retry-After wins, capped."""
        if hint is not None:
            return min(hint, self.config.max_backoff_s)
        ceiling = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _short(text: str, limit: int = 300) -> str:
    """One line, printable, bounded: a server's error text is untrusted too."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def provider_from_config(
    config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> OpenAICompatibleProvider:
    """The configured provider, or LLMNotConfigured saying what to set."""
    return OpenAICompatibleProvider(LLMConfig.resolve(config, env))
