from __future__ import annotations

import pytest
from openai_stub import ChatStub

from ouroboros.capabilities.skills.llm import (
    LLMConfig,
    LLMError,
    LLMNotConfigured,
    MalformedAnswer,
    OpenAICompatibleProvider,
    provider_from_config,
)


def test_config_prefers_explicit_then_ouro_then_openai_variables() -> None:
    env = {"OURO_LLM_MODEL": "ouro-model", "OPENAI_MODEL": "openai-model",
           "OPENAI_BASE_URL": "http://x/v1", "OPENAI_API_KEY": "k"}
    cfg = LLMConfig.resolve({"base_url": "http://explicit/v1"}, env)
    assert cfg.base_url == "http://explicit/v1"
    assert cfg.model == "ouro-model"
    assert cfg.api_key == "k"
    assert cfg.configured


def test_missing_endpoint_names_what_to_set() -> None:
    with pytest.raises(LLMNotConfigured) as e:
        provider_from_config(env={})
    assert "OURO_LLM_BASE_URL" in str(e.value) and "OURO_LLM_MODEL" in str(e.value)
    assert e.value.missing == ["OURO_LLM_BASE_URL", "OURO_LLM_MODEL"]


def test_api_key_alone_targets_the_default_openai_endpoint() -> None:
    cfg = LLMConfig.resolve(env={"OPENAI_API_KEY": "sk", "OURO_LLM_MODEL": "m"})
    assert cfg.configured and cfg.base_url is None


def test_key_is_not_in_the_repr() -> None:
    assert "sk-secret" not in repr(LLMConfig(base_url="u", model="m", api_key="sk-secret"))


def test_chat_returns_content_through_the_real_client(
    chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.replies.append("hello there")
    reply = provider.chat([{"role": "user", "content": "hi"}])
    assert reply.content == "hello there"
    assert reply.tool_calls == []
    sent = chat_stub.requests[0]
    assert sent["body"]["model"] == "stub-model"
    assert sent["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["auth"] == "Bearer sk-test"


def test_chat_parses_tool_calls_and_rebuilds_the_assistant_message(
    chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.replies.append([("run_binary", {"binary_id": "word_stats", "input_json": "{}"})])
    tools = [{"type": "function", "function": {"name": "run_binary", "parameters": {}}}]
    reply = provider.chat([{"role": "user", "content": "go"}], tools=tools)
    assert reply.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert call.name == "run_binary"
    assert call.arguments == {"binary_id": "word_stats", "input_json": "{}"}
    assert chat_stub.requests[0]["body"]["tools"] == tools
    msg = reply.as_message()
    assert msg["tool_calls"][0]["function"]["name"] == "run_binary"


def test_malformed_tool_arguments_are_a_clean_error(
    chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.replies += [[("run_binary", "{not json")], [("list_tools", "[1, 2]")]]
    with pytest.raises(MalformedAnswer, match="'run_binary' are not JSON"):
        provider.chat([{"role": "user", "content": "go"}])
    with pytest.raises(MalformedAnswer, match="must be a JSON object, not list"):
        provider.chat([{"role": "user", "content": "go"}])


def test_server_error_becomes_llm_error(
    chat_stub: ChatStub, provider: OpenAICompatibleProvider
) -> None:
    chat_stub.status = 400
    with pytest.raises(LLMError, match="HTTP 400"):
        provider.chat([{"role": "user", "content": "hi"}])


def test_unreachable_endpoint_says_where() -> None:
    p = OpenAICompatibleProvider(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m",
                                           timeout_s=2, backoff_s=0.001))
    with pytest.raises(LLMError, match=r"cannot reach the LLM endpoint at http://127\.0\.0\.1:9"):
        p.chat([{"role": "user", "content": "hi"}])


def test_temperature_is_sent_only_when_configured(chat_stub: ChatStub) -> None:
    env = {"OURO_LLM_BASE_URL": chat_stub.base_url, "OURO_LLM_MODEL": "m"}
    chat_stub.replies += ["a", "b"]
    provider_from_config(env=env).chat([{"role": "user", "content": "x"}])
    provider_from_config(env={**env, "OURO_LLM_TEMPERATURE": "0.3"}).chat(
        [{"role": "user", "content": "x"}])
    assert "temperature" not in chat_stub.requests[0]["body"]
    assert chat_stub.requests[1]["body"]["temperature"] == 0.3


def test_non_numeric_settings_are_refused() -> None:
    with pytest.raises(LLMError, match="must be numbers"):
        LLMConfig.resolve(env={"OURO_LLM_TIMEOUT": "soon"})
