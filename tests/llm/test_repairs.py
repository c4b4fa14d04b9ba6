"""Repairs send only what is needed: requests and history stay flat however big the answers."""

from __future__ import annotations

import json

import pytest

from ouroboros.capabilities.llm import OpenAICompatibleProvider
from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.authoring import (
    AuthoringFailed,
    ToolAuthor,
    history_path,
    read_history,
)

from .hostile import HostileLLM
from .tools import ADD_TASK, LOOKUP, WRITER, adder

PADDING = "Let me think about this very carefully. " * 6_000  # ~250 kB of prose per answer


def test_repair_requests_do_not_grow_with_each_attempt(
    store: SkillStore, hostile: HostileLLM, provider: OpenAICompatibleProvider
) -> None:
    padded = PADDING + adder(LOOKUP)
    hostile.replies += [WRITER, padded, padded, padded, padded]
    with pytest.raises(AuthoringFailed):
        ToolAuthor(store, provider, max_repairs=3).create(ADD_TASK, name="add")
    sizes = [r["bytes"] for r in hostile.requests[1:]]
    first, repairs = sizes[0], sizes[1:]
    assert len(repairs) == 3
    assert max(repairs) - min(repairs) < 200  # flat, not first + n * answer
    assert repairs[0] < first + 10_000  # the prose is not sent back, only the files
    messages = hostile.messages(4)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "think about this" not in messages[2]["content"]


def test_history_keeps_each_answer_bounded_and_hashed(
    store: SkillStore, hostile: HostileLLM, provider: OpenAICompatibleProvider
) -> None:
    padded = PADDING + adder(LOOKUP)
    hostile.replies += [WRITER, padded, padded, padded]
    with pytest.raises(AuthoringFailed):
        ToolAuthor(store, provider, max_repairs=2).create(ADD_TASK, name="add")
    records = read_history(store.root, "add")
    code = [r for r in records if r["action"] == "create"]
    assert len(code) == 3 and all(len(r["answer"]) == 64_000 for r in code)
    assert all(r["answer_chars"] == len(padded) and len(r["answer_sha256"]) == 64 for r in code)
    assert "prompt" in code[0] and all("repair" in r and "prompt" not in r for r in code[1:])
    assert history_path(store.root, "add").stat().st_size < 4 * 70_000
    assert all(len(json.dumps(r)) < 70_000 for r in records)
