"""A tool version as an OpenAI function definition or an MCP tool definition.

Both formats want an *object* of named arguments, while a tool takes any one JSON value.
A tool whose input schema is exactly ``{"type": "object", ...}`` takes the arguments as its
input; any other tool takes one argument, ``input``, whose schema is the tool's (`wraps`).
MCP's ``outputSchema`` must be an object too (through protocol 2025-11-25): an output that
is not declared an object is returned as ``{"output": value}`` (`wraps_output`).

Pure functions of a version's id, description and schemas: the CLI (`ouro tool export`) and
the MCP server print and serve the same definitions.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import InputRejected
from .schemas import ToolSchemas

INPUT_ARGUMENT = "input"
OUTPUT_FIELD = "output"


def wraps(input_schema: dict[str, Any]) -> bool:
    """Whether the tool's input travels as the ``input`` argument (not as the arguments)."""
    return input_schema.get("type") != "object"


def wraps_output(output_schema: dict[str, Any]) -> bool:
    return output_schema.get("type") != "object"


def arguments_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema of the arguments a caller sends."""
    if not wraps(input_schema):
        return input_schema
    return {"type": "object", "properties": {INPUT_ARGUMENT: input_schema},
            "required": [INPUT_ARGUMENT], "additionalProperties": False}


def result_schema(output_schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema of the structured result a caller receives."""
    if not wraps_output(output_schema):
        return output_schema
    return {"type": "object", "properties": {OUTPUT_FIELD: output_schema},
            "required": [OUTPUT_FIELD]}


def input_of(arguments: dict[str, Any] | None, input_schema: dict[str, Any]) -> Any:
    """The tool input carried by a call's arguments.

    Raises:
        InputRejected: a wrapped tool called without ``input`` or with other arguments.
    """
    arguments = arguments or {}
    if not wraps(input_schema):
        return arguments
    extra = sorted(set(arguments) - {INPUT_ARGUMENT})
    if INPUT_ARGUMENT not in arguments or extra:
        raise InputRejected(f"this tool takes one argument, {INPUT_ARGUMENT!r} (its JSON input)"
                            + (f"; unexpected {', '.join(repr(e[:40]) for e in extra[:5])}"
                               if extra else ""))
    return arguments[INPUT_ARGUMENT]


def structured(output: Any, output_schema: dict[str, Any]) -> dict[str, Any]:
    """A call's output as MCP structured content (an object, wrapped when needed)."""
    if not wraps_output(output_schema) and isinstance(output, dict):
        return output
    return {OUTPUT_FIELD: output}


def _with_items(schema: Any) -> Any:
    """OpenAI refuses an array schema without ``items``: give each one ``{}`` (any)."""
    if isinstance(schema, dict):
        out = {k: _with_items(v) for k, v in schema.items()}
        kinds = schema.get("type")
        if (kinds == "array" or (isinstance(kinds, list) and "array" in kinds)) \
                and "items" not in schema and "prefixItems" not in schema:
            out["items"] = {}
        return out
    if isinstance(schema, list):
        return [_with_items(v) for v in schema]
    return schema


def as_openai(tool_id: str, description: str, schemas: ToolSchemas) -> dict[str, Any]:
    """An OpenAI (Chat Completions) function tool: ``{"type": "function", "function": …}``."""
    parameters = _with_items(copy.deepcopy(arguments_schema(schemas.input)))
    parameters.pop("$schema", None)
    return {"type": "function",
            "function": {"name": tool_id, "description": description,
                         "parameters": parameters, "strict": False}}


def as_mcp(tool_id: str, description: str, schemas: ToolSchemas) -> dict[str, Any]:
    """An MCP ``Tool``: name, description, ``inputSchema``, ``outputSchema``."""
    return {"name": tool_id, "description": description,
            "inputSchema": copy.deepcopy(arguments_schema(schemas.input)),
            "outputSchema": copy.deepcopy(result_schema(schemas.output)),
            # a sandboxed run has no files and no network
            "annotations": {"readOnlyHint": True, "openWorldHint": False}}
