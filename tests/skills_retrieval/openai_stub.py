"""The chat stub of the skills tests: the project's scripted OpenAI-compatible server.

It is `tests/llm/hostile.py` (one server for every LLM test); the old name stays so these
tests read as before. Each request pops the next scripted reply: a string (content), a list
of (function name, arguments) pairs (tool calls), or a hostile step (see that module).
"""

from __future__ import annotations

from llm.hostile import HostileLLM as ChatStub
from llm.hostile import completion

__all__ = ["ChatStub", "completion"]
