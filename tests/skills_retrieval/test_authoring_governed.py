"""Authoring through the governed workspace store: the kernel's gates have the last word."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_stub import ChatStub
from test_authoring_llm import WRITER, answer

from ouroboros.capabilities.skills.authoring import ToolAuthor, read_history
from ouroboros.capabilities.skills.errors import ToolNotFound
from ouroboros.capabilities.skills.governance import ToolPending, open_store
from ouroboros.capabilities.skills.llm import OpenAICompatibleProvider
from ouroboros.kernel import Runtime


def require_approval_for_skills(rt: Runtime) -> None:
    gates = rt.value("kernel/gates")
    gates["approval"].append({"types": ["skill"], "targets": ["*"]})
    out = rt.submit(rt.sign(rt.propose("config", "kernel/gates", value=gates, author="operator",
                                       reasoning="humans approve new skills"), "root"))
    assert out.status == "applied", out.reason


def test_created_tool_is_registered_by_a_skill_patch(
    tmp_path: Path, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    with Runtime.init(tmp_path / "ws") as rt:
        store = open_store(rt)
        chat_stub.replies += [WRITER, answer()]
        v = ToolAuthor(store, provider).create("count words", name="wc").version
        assert rt.value("skills/wc")["fingerprint"] == v.fingerprint
        applied = [e for e in rt.log(kind="PatchApplied")]
        assert applied, "a PatchApplied event records the new version"


def test_pending_approval_stops_authoring_and_approval_installs_it(
    tmp_path: Path, chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    with Runtime.init(tmp_path / "ws") as rt:
        require_approval_for_skills(rt)
        store = open_store(rt)
        chat_stub.replies += [WRITER, answer()]
        with pytest.raises(ToolPending) as e:
            ToolAuthor(store, provider, max_repairs=2).create("count words", name="wc")
        assert len(chat_stub.requests) == 2  # no repair attempt for a pending patch
        _, rec = read_history(store.root, "wc")
        assert rec["outcome"] == "pending" and rec["patch_hash"] == e.value.patch_hash
        with pytest.raises(ToolNotFound):
            store.get("wc")
        assert rt.approve(e.value.patch_hash).status == "applied"
        assert store.run("wc", {"text": "a b c d"}).output == {"words": 4}
