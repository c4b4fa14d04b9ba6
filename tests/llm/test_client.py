"""The client against a hostile server: no hang, no traceback, no unbounded anything."""

from __future__ import annotations

import json

import pytest

from ouroboros.capabilities.llm import (
    AnswerTooLarge,
    Budget,
    BudgetExceeded,
    LLMConfig,
    LLMError,
    LLMHTTPError,
    LLMTimeout,
    MalformedAnswer,
    MeteredProvider,
    OpenAICompatibleProvider,
)

from .conftest import SECRET_KEY, fast_config
from .hostile import Drip, Hang, HostileLLM, Huge, Raw, Status, body_of, timed

HI = [{"role": "user", "content": "hi"}]


def client(hostile: HostileLLM, sleeps: list[float] | None = None, **kw: object
           ) -> OpenAICompatibleProvider:
    record = sleeps if sleeps is not None else []
    return OpenAICompatibleProvider(fast_config(hostile.base_url, **kw), sleep=record.append)


@pytest.mark.parametrize("step", [
    Drip(body_of("a slow answer " * 20), every_s=0.15),  # each read is short, the whole is not
    Drip(body_of("x"), every_s=0.15, headers_too=True),  # even the status line drips
    Hang(),
], ids=["drip-body", "drip-headers", "hang"])
def test_a_dripping_or_hung_server_ends_at_the_overall_deadline(
    hostile: HostileLLM, step: object
) -> None:
    hostile.replies.append(step)
    error, took = timed(lambda: client(hostile, timeout_s=1.0).chat(HI))
    assert isinstance(error, LLMTimeout), error
    assert "deadline" in str(error)
    assert 0.9 <= took < 3.0  # the deadline, not a per-read timeout restarted by each byte
    assert len(hostile.requests) == 1  # a timeout is not retried


def test_the_task_deadline_is_shorter_than_the_request_deadline(hostile: HostileLLM) -> None:
    hostile.replies.append(Hang())
    budget = Budget(max_seconds=0.6)
    metered = MeteredProvider(client(hostile, timeout_s=30.0), budget)
    error, took = timed(lambda: metered.chat(HI))
    assert isinstance(error, BudgetExceeded) and error.budget == "seconds"
    assert took < 1.5
    with pytest.raises(BudgetExceeded):  # spent: the next call is refused before any request
        metered.chat(HI)
    assert len(hostile.requests) == 1


def test_429_is_retried_after_the_servers_retry_after(hostile: HostileLLM) -> None:
    hostile.replies += [Status(429, retry_after=0.04), Status(503), "finally"]
    sleeps: list[float] = []
    reply = client(hostile, sleeps, max_backoff_s=1.0).chat(HI)
    assert reply.content == "finally" and len(hostile.requests) == 3
    assert sleeps[0] == pytest.approx(0.04)  # the server's hint
    assert 0 <= sleeps[1] <= 0.002  # then full jitter under backoff_s * 2


def test_retries_are_bounded_and_the_last_error_is_reported(hostile: HostileLLM) -> None:
    hostile.replies += [Status(500)] * 10
    sleeps: list[float] = []
    with pytest.raises(LLMHTTPError, match="HTTP 500") as e:
        client(hostile, sleeps, max_retries=2).chat(HI)
    assert e.value.status == 500
    assert len(hostile.requests) == 3 and len(sleeps) == 2


def test_a_retry_after_past_the_deadline_gives_up_at_once(hostile: HostileLLM) -> None:
    hostile.replies += [Status(429, retry_after=3600)] * 3
    sleeps: list[float] = []
    with pytest.raises(LLMHTTPError, match="HTTP 429"):
        client(hostile, sleeps, max_backoff_s=60.0, timeout_s=2.0).chat(HI)
    assert sleeps == [] and len(hostile.requests) == 1  # waiting could not end in time


def test_client_errors_are_not_retried(hostile: HostileLLM) -> None:
    hostile.replies += [Status(401, message="bad key"), "never sent"]
    with pytest.raises(LLMHTTPError, match="HTTP 401: bad key"):
        client(hostile).chat(HI)
    assert len(hostile.requests) == 1


def test_a_huge_answer_is_refused_by_its_declared_length(hostile: HostileLLM) -> None:
    hostile.replies.append(Huge(3 << 20))
    with pytest.raises(AnswerTooLarge, match="declares"):
        client(hostile, max_response_bytes=1 << 20).chat(HI)


def test_a_huge_answer_without_a_length_is_cut_off_while_streaming(hostile: HostileLLM) -> None:
    big = body_of("y" * (3 << 20))
    hostile.replies.append(Drip(big, every_s=0, chunk=1 << 16, headers_too=True,
                                declare_length=False))
    error, took = timed(lambda: client(hostile, max_response_bytes=1 << 20).chat(HI))
    assert isinstance(error, AnswerTooLarge) and "not read further" in str(error)
    assert took < 2.0


MALFORMED = {
    "not-json": b"<html>502 bad gateway</html>",
    "not-utf8": b"\xff\xfe{}",
    "top-level-list": b"[]",
    "no-choices": b"{}",
    "empty-choices": b'{"choices": []}',
    "choice-without-message": b'{"choices": [{"finish_reason": "stop"}]}',
    "content-not-string": b'{"choices": [{"message": {"content": 42}}]}',
    "content-list": b'{"choices": [{"message": {"content": [{"type": "text"}]}}]}',
    "tool-calls-not-list": b'{"choices": [{"message": {"tool_calls": {"a": 1}}}]}',
    "custom-tool-call": b'{"choices": [{"message": {"tool_calls": [{"id": "c", "type": "custom",'
                        b' "function": {"name": "f", "arguments": "{}"}}]}}]}',
    "tool-call-without-id": b'{"choices": [{"message": {"tool_calls": [{"function": '
                            b'{"name": "f", "arguments": "{}"}}]}}]}',
    "arguments-not-json": b'{"choices": [{"message": {"tool_calls": [{"id": "c", "function": '
                          b'{"name": "f", "arguments": "{oops"}}]}}]}',
    "arguments-a-list": b'{"choices": [{"message": {"tool_calls": [{"id": "c", "function": '
                        b'{"name": "f", "arguments": "[1]"}}]}}]}',
    "arguments-not-string": b'{"choices": [{"message": {"tool_calls": [{"id": "c", "function": '
                            b'{"name": "f", "arguments": {"a": 1}}}]}}]}',
    "usage-negative": b'{"choices": [{"message": {"content": "x"}}], "usage": '
                      b'{"prompt_tokens": -5}}',
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_every_malformed_answer_is_one_clean_error(hostile: HostileLLM, body: bytes) -> None:
    hostile.replies.append(Raw(body))
    with pytest.raises(MalformedAnswer) as e:
        client(hostile).chat(HI)
    assert "\n" not in str(e.value) and len(str(e.value)) < 400
    assert len(hostile.requests) == 1  # a malformed answer is not retried into a bill


def test_a_server_without_usage_is_still_metered(hostile: HostileLLM) -> None:
    hostile.replies.append(Raw(b'{"choices": [{"message": {"content": "' + b"z" * 4000 + b'"}}]}'))
    budget = Budget(max_tokens=500)
    with pytest.raises(BudgetExceeded, match="tokens"):
        MeteredProvider(client(hostile), budget).chat(HI)
    assert budget.tokens >= 1000  # about four characters a token, estimated


def test_the_key_goes_in_the_header_and_nowhere_else(hostile: HostileLLM) -> None:
    hostile.replies += ["ok", Status(400, message="nope")]
    p = client(hostile)
    p.chat(HI)
    with pytest.raises(LLMError) as e:
        p.chat(HI)
    assert hostile.requests[0]["auth"] == f"Bearer {SECRET_KEY}"
    assert SECRET_KEY not in hostile.all_text()
    assert SECRET_KEY not in str(e.value) and SECRET_KEY not in repr(p.config)


def test_an_unreachable_endpoint_is_retried_then_named(hostile: HostileLLM) -> None:
    sleeps: list[float] = []
    p = OpenAICompatibleProvider(fast_config("http://127.0.0.1:9/v1"), sleep=sleeps.append)
    with pytest.raises(LLMError, match=r"cannot reach the LLM endpoint at http://127\.0\.0\.1:9"):
        p.chat(HI)
    assert p.attempts == 3 and len(sleeps) == 2


@pytest.mark.parametrize("bad", [{"timeout_s": float("inf")}, {"timeout_s": 0},
                                 {"backoff_s": float("nan")}, {"max_retries": 99},
                                 {"max_response_bytes": 10}])
def test_limits_that_would_disarm_the_client_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(LLMError, match="must be"):
        LLMConfig(base_url="http://x/v1", model="m", **bad)  # type: ignore[arg-type]


def test_a_request_carries_only_the_conversation(hostile: HostileLLM) -> None:
    hostile.replies.append("ok")
    client(hostile).chat(HI, tools=[{"type": "function", "function": {"name": "f"}}])
    sent = hostile.requests[0]["body"]
    assert set(sent) == {"model", "messages", "tools"}
    assert json.dumps(sent["messages"]) == json.dumps(HI)
