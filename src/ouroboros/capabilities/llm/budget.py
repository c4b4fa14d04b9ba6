"""What one task may spend on a model: tokens and wall time, across every call it makes.

A `Budget` is shared by everything a task does (the Solver's turns, each create or mutate
it starts, their repairs and independent test writing), through `MeteredProvider`, which
hands the task's deadline to each request and charges each reply's usage. Spending past a
limit raises `BudgetExceeded`; the caller ends the task with that as its outcome.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import LLMProvider
from .errors import BudgetExceeded, LLMTimeout
from .wire import ChatReply


@dataclass
class Budget:
    """Token and time limits of one task (None: unlimited); counters of what it used."""

    max_tokens: int | None = None
    max_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    tokens: int = 0
    requests: int = 0

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds)
                                                 and self.max_seconds > 0):
            raise ValueError("max_seconds must be a positive number")

    @property
    def deadline(self) -> float | None:
        return None if self.max_seconds is None else self.started + self.max_seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise `BudgetExceeded` if a limit is already used up."""
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetExceeded("tokens", self.tokens, self.max_tokens)
        if self.max_seconds is not None and self.elapsed() >= self.max_seconds:
            raise BudgetExceeded("seconds", round(self.elapsed(), 1), self.max_seconds)

    def charge(self, tokens: int) -> None:
        self.tokens += max(0, tokens)
        self.requests += 1
        if self.max_tokens is not None and self.tokens > self.max_tokens:
            raise BudgetExceeded("tokens", self.tokens, self.max_tokens,
                                 "the last reply was not used")

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "max_tokens": self.max_tokens,
                "seconds": round(self.elapsed(), 3), "max_seconds": self.max_seconds,
                "requests": self.requests}


class MeteredProvider:
    """A provider whose every call keeps to one task's `Budget`."""

    def __init__(self, inner: LLMProvider, budget: Budget) -> None:
        self.inner, self.budget = inner, budget

    @property
    def model(self) -> str:
        return self.inner.model

    def chat(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
        *, deadline: float | None = None,
    ) -> ChatReply:
        self.budget.check()
        task_end = self.budget.deadline
        end = task_end if deadline is None else (
            deadline if task_end is None else min(deadline, task_end))
        try:
            reply = self.inner.chat(messages, tools, deadline=end)
        except LLMTimeout:
            if task_end is not None and time.monotonic() >= task_end:
                raise BudgetExceeded("seconds", round(self.budget.elapsed(), 1),
                                     float(self.budget.max_seconds or 0),
                                     "the model was still answering") from None
            raise
        self.budget.charge(reply.usage.total)
        return reply
