from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_stub import ChatStub

from ouroboros.capabilities.skills.embedding import E5Embedder, default_embedder
from ouroboros.capabilities.skills.llm import LLMConfig, OpenAICompatibleProvider


@pytest.fixture
def chat_stub() -> Iterator[ChatStub]:
    stub = ChatStub()
    yield stub
    stub.close()


@pytest.fixture
def provider(chat_stub: ChatStub) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(LLMConfig(base_url=chat_stub.base_url, model="stub-model",
                                              api_key="sk-test", backoff_s=0.001))


@pytest.fixture(scope="session")
def embedder() -> E5Embedder:
    return default_embedder()
