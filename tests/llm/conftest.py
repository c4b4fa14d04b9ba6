"""Fixtures of the hostile-model tests: the server, fast clients, stores and workspaces."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ouroboros.capabilities.llm import LLMConfig, OpenAICompatibleProvider
from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.embedding import Matrix, normalise
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime

from .hostile import HostileLLM

STARTER = Path(__file__).resolve().parents[2] / "src/ouroboros/capabilities/skills/starter"
SECRET_KEY = "sk-canary-0123456789abcdefLLMKEY"


class HashEmbedder:
    """Bag of hashed words: deterministic, instant, good enough to rank a handful of tools."""

    model_id = "test/hash-words"
    dim = 64

    def _one(self, text: str) -> Matrix:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        v[0] += 1e-3  # never the zero vector
        return v

    def embed_documents(self, texts: list[str]) -> Matrix:
        return normalise(np.stack([self._one(t) for t in texts]))

    def embed_query(self, text: str) -> Matrix:
        return normalise(self._one(text))


@pytest.fixture(scope="session")
def runtimes() -> Runtimes:
    return Runtimes()


@pytest.fixture
def hostile() -> Iterator[HostileLLM]:
    server = HostileLLM()
    yield server
    server.close()


def fast_config(base_url: str, **overrides: object) -> LLMConfig:
    """Short deadline and tiny backoff: an attack that could hang shows up in seconds."""
    settings: dict[str, object] = {"base_url": base_url, "model": "hostile-model",
                                   "api_key": SECRET_KEY, "timeout_s": 5.0, "backoff_s": 0.001,
                                   "max_backoff_s": 0.05}
    settings.update(overrides)
    return LLMConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def provider(hostile: HostileLLM) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(fast_config(hostile.base_url))


@pytest.fixture
def store(tmp_path: Path, runtimes: Runtimes) -> SkillStore:
    return SkillStore(tmp_path / "store", runtimes=runtimes)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.init(tmp_path / "ws")
    yield rt
    rt.close()


@pytest.fixture
def wstore(ws: Runtime, runtimes: Runtimes) -> SkillStore:
    return open_store(ws, runtimes)


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch, hostile: HostileLLM) -> HostileLLM:
    """The CLI's endpoint settings pointing at the hostile server, with short deadlines."""
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OURO_LLM_BASE_URL", hostile.base_url)
    monkeypatch.setenv("OURO_LLM_MODEL", "hostile-model")
    monkeypatch.setenv("OURO_LLM_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OURO_LLM_TIMEOUT", "2")
    monkeypatch.setenv("OURO_LLM_BACKOFF", "0.001")
    return hostile
