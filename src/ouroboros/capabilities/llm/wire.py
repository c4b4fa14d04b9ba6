"""The chat-completions answer shapes we accept, as pydantic models.

Everything an endpoint sends is validated here before any other code looks at it: a 200
whose body is not JSON, has no choices, a choice without a message, content that is not a
string, a tool call that is not a function call, or arguments that are not a JSON object is a
`MalformedAnswer` naming what was wrong. Unknown extra fields are ignored (servers add their
own), missing optional ones get their defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .errors import MalformedAnswer

_Lenient = ConfigDict(extra="ignore", frozen=True)
MAX_TOOL_CALLS = 64  # one reply; the Solver's per-turn budget is far lower


class FunctionWire(BaseModel):
    model_config = _Lenient
    name: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    arguments: StrictStr = "{}"


class ToolCallWire(BaseModel):
    model_config = _Lenient
    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    type: Literal["function"] = "function"
    function: FunctionWire


class MessageWire(BaseModel):
    model_config = _Lenient
    role: Literal["assistant"] = "assistant"
    content: StrictStr | None = None
    tool_calls: Annotated[list[ToolCallWire], Field(max_length=MAX_TOOL_CALLS)] | None = None


class ChoiceWire(BaseModel):
    model_config = _Lenient
    message: MessageWire
    finish_reason: StrictStr | None = None


class UsageWire(BaseModel):
    model_config = _Lenient
    prompt_tokens: Annotated[StrictInt, Field(ge=0)] = 0
    completion_tokens: Annotated[StrictInt, Field(ge=0)] = 0
    total_tokens: Annotated[StrictInt, Field(ge=0)] = 0


class CompletionWire(BaseModel):
    model_config = _Lenient
    choices: Annotated[list[ChoiceWire], Field(min_length=1)]
    usage: UsageWire | None = None


class ErrorInnerWire(BaseModel):
    model_config = _Lenient
    message: StrictStr = ""


class ErrorBodyWire(BaseModel):
    """``{"error": {"message": ...}}`` as OpenAI-style servers send with a 4xx/5xx."""

    model_config = _Lenient
    error: ErrorInnerWire | StrictStr


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; `arguments` is the parsed JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatReply:
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)

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


def parse_completion(body: bytes, *, request_chars: int = 0) -> ChatReply:
    """A validated reply from a 200 body.

    `request_chars` estimates the prompt's tokens when the server reports no usage (about
    four characters a token), so a budget counts even a server that hides its usage.

    Raises:
        MalformedAnswer: the body is not the chat-completions shape.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedAnswer(f"the LLM answer is not JSON ({e.msg} at byte {e.pos})"
                              if isinstance(e, json.JSONDecodeError)
                              else "the LLM answer is not UTF-8 text") from None
    try:
        wire = CompletionWire.model_validate(data)
    except ValidationError as e:
        raise MalformedAnswer(f"the LLM answer is not a chat completion: {_first(e)}") from None
    choice = wire.choices[0]
    calls = [_tool_call(c) for c in choice.message.tool_calls or []]
    content = choice.message.content or ""
    if wire.usage is not None and (wire.usage.prompt_tokens or wire.usage.completion_tokens):
        usage = Usage(wire.usage.prompt_tokens, wire.usage.completion_tokens)
    elif wire.usage is not None and wire.usage.total_tokens:
        usage = Usage(0, wire.usage.total_tokens)
    else:
        produced = len(content) + sum(len(c.raw_arguments) for c in calls)
        usage = Usage(request_chars // 4, produced // 4 + 1)
    return ChatReply(content, calls, choice.finish_reason, usage)


def _tool_call(call: ToolCallWire) -> ToolCall:
    raw = call.function.arguments or "{}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise MalformedAnswer(f"the arguments of tool call {call.function.name!r} are not "
                              f"JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(value, dict):
        raise MalformedAnswer(f"the arguments of tool call {call.function.name!r} must be a "
                              f"JSON object, not {type(value).__name__}")
    return ToolCall(call.id, call.function.name, value, raw)


def error_message(body: bytes) -> str:
    """The server's error text from a non-200 body, if it has the usual shape."""
    try:
        wire = ErrorBodyWire.model_validate_json(body)
    except (ValidationError, ValueError):
        return body[:200].decode("utf-8", "replace")
    return wire.error if isinstance(wire.error, str) else wire.error.message


def _first(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the body"
    return f"{where}: {err['msg']}"
