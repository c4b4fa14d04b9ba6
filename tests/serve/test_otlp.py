"""The OTLP/HTTP receiver, driven by the OpenTelemetry SDK's own exporters (protobuf and
JSON, gzip), and attacked: re-sends, bombs, junk, wrong types, secrets in messages."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.interfaces.http.tokens import TokenStore

from .conftest import new_workspace
from .live import LiveServer, start

SECRET = "ghp_" + "Zq8xR2vL0pK7wN4mB1cT9yH3jD6fG5sA2eU8"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = new_workspace(tmp_path_factory.mktemp("otlp") / "ws")
    server = start(home, "--no-scheduler", "--max-otlp", str(1 << 20))
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def stored(home: Path) -> list[dict[str, Any]]:
    return list(TelemetryStore(home).events())


def make_spans(service: str) -> Sequence[ReadableSpan]:
    """One tool span per convention, an error with a secret, and an HTTP span (skipped)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("execute_tool web_search") as span:
        span.set_attribute("gen_ai.operation.name", "execute_tool")
        span.set_attribute("gen_ai.tool.name", "web_search")
        span.set_status(Status(StatusCode.ERROR, f"auth failed with token {SECRET}"))
        span.set_attribute("error.type", "AUTH_FAILED")
    with tracer.start_as_current_span("lookup") as span:
        span.set_attribute("openinference.span.kind", "TOOL")
        span.set_attribute("tool.name", "kb_lookup")
    with tracer.start_as_current_span("calc.tool") as span:
        span.set_attribute("traceloop.span.kind", "tool")
        span.set_attribute("traceloop.entity.name", "calculator")
    with tracer.start_as_current_span("GET /index.html") as span:
        span.set_attribute("http.request.method", "GET")
    provider.shutdown()
    return memory.get_finished_spans()


def test_the_sdk_protobuf_exporter_delivers_tool_calls_sanitized_and_once(
        live: LiveServer) -> None:
    token = live.token("collector", "submit")
    exporter = OTLPSpanExporter(endpoint=f"{live.url}/v1/traces", compression=Compression.Gzip,
                                headers={"Authorization": f"Bearer {token}"})
    spans = make_spans("proto-agent")
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    mine = [e for e in stored(live.home) if e.get("agent") == "proto-agent"]
    assert sorted(e["tool"] for e in mine) == ["calculator", "kb_lookup", "web_search"]
    search = next(e for e in mine if e["tool"] == "web_search")
    assert search["success"] is False and search["error_code"] == "AUTH_FAILED"
    assert SECRET not in json.dumps(mine) and "auth failed" in search["error_message"]
    assert all(len(e["trace_id"]) == 32 and len(e["span_id"]) == 16 for e in mine)
    assert all(e["latency_ms"] >= 0 for e in mine)
    # the exporter retries a batch it believes lost: nothing is stored twice
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    again = [e for e in stored(live.home) if e.get("agent") == "proto-agent"]
    assert len(again) == 3
    exporter.shutdown()


def test_the_sdk_json_exporter_is_read_the_same(live: LiveServer) -> None:
    token = live.token("collector", "submit")
    exporter = JsonSpanExporter(endpoint=f"{live.url}/v1/traces",
                                headers={"Authorization": f"Bearer {token}"})
    spans = make_spans("json-agent")
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    mine = [e for e in stored(live.home) if e.get("agent") == "json-agent"]
    assert sorted(e["tool"] for e in mine) == ["calculator", "kb_lookup", "web_search"]
    assert SECRET not in json.dumps(mine)
    ids = {(e["trace_id"], e["span_id"]) for e in mine}
    assert ids == {(format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"))
                   for s in spans if s.name != "GET /index.html"}
    exporter.shutdown()


def test_the_sdk_log_exporter_delivers_ouro_events(live: LiveServer) -> None:
    token = live.token("collector", "submit")
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "log-agent"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("test")
    logger.emit(body="the user fixed the answer", timestamp=time.time_ns(),
                attributes={"ouro.event_type": "user_correction",
                            "ouro.correction_type": "wrong_tool"})
    logger.emit(body="just a log line", timestamp=time.time_ns())
    records = memory.get_finished_logs()
    exporter = OTLPLogExporter(endpoint=f"{live.url}/v1/logs",
                               headers={"Authorization": f"Bearer {token}"})
    assert exporter.export(records).name == "SUCCESS"
    assert exporter.export(records).name == "SUCCESS"  # a retry: stored once
    mine = [e for e in stored(live.home) if e.get("agent") == "log-agent"]
    assert [(e["event_type"], e["correction_type"]) for e in mine] == [
        ("user_correction", "wrong_tool")]


def span_json(trace_id: str, span_id: str, tool: str, start: int | None = None) -> dict[str, Any]:
    start = start or time.time_ns()
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "b64-agent"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": f"execute_tool {tool}",
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": tool}}]}]}]}]}


def test_proto3_json_base64_ids_are_the_same_span_as_hex(live: LiveServer) -> None:
    trace, span = bytes(range(1, 17)), bytes(range(101, 109))
    start = time.time_ns()
    with live.client(live.token("collector", "submit")) as c:
        r = c.post("/v1/traces", json=span_json(base64.b64encode(trace).decode(),
                                                base64.b64encode(span).decode(), "b64tool", start))
        assert r.status_code == 200 and r.json() == {}
        r = c.post("/v1/traces", json=span_json(trace.hex(), span.hex(), "b64tool", start))
        assert r.status_code == 200
    mine = [e for e in stored(live.home) if e.get("tool") == "b64tool"]
    assert len(mine) == 1 and mine[0]["trace_id"] == trace.hex()
    assert mine[0]["span_id"] == span.hex()


@pytest.mark.parametrize(
    ("tool", "placeholder"),
    [
        ("AKIAZ7QX4LRM2VN5TB3W", "<secret:aws-access-key>"),
        (f"deploy {SECRET}", "deploy <secret:github-pat>"),
        ("xK9vQ2mZ7pL4wR8nT3bYc5", "<secret:high-entropy>"),
        ("alice.smith@example.com", "<email>"),
        ("/Users/alice/bin/sync", "<path>"),
    ],
)
def test_a_secret_passed_off_as_a_tool_name_is_still_redacted(
    live: LiveServer, tool: str, placeholder: str
) -> None:
    """Tool names are kept verbatim (analysis groups by them) only when nothing in them
    can be named: a key, an address or a path in ``gen_ai.tool.name`` is replaced."""
    trace, span = hashlib.sha256(tool.encode()).digest()[:16], bytes(range(41, 49))
    with live.client(live.token("collector", "submit")) as c:
        r = c.post("/v1/traces", json=span_json(base64.b64encode(trace).decode(),
                                                base64.b64encode(span).decode(), tool))
        assert r.status_code == 200 and r.json() == {}
    mine = [e for e in stored(live.home) if e.get("trace_id") == trace.hex()]
    assert [e["tool"] for e in mine] == [placeholder]
    written = b"".join(p.read_bytes() for p in (live.home / "telemetry").rglob("*.jsonl"))
    assert tool.encode() not in written and tool.split()[-1].encode() not in written


def test_the_same_span_sent_concurrently_is_stored_once(live: LiveServer) -> None:
    doc = span_json("ab" * 16, "cd" * 8, "racetool")
    token = live.token("collector", "submit")
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def send() -> None:
        with live.client(token) as c:
            barrier.wait()
            codes.append(c.post("/v1/traces", json=doc).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    assert len([e for e in stored(live.home) if e.get("tool") == "racetool"]) == 1


def test_bad_spans_are_a_partial_success_naming_them(live: LiveServer) -> None:
    doc = span_json("01" * 16, "02" * 8, "goodtool")
    bad = json.loads(json.dumps(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]))
    bad["spanId"] = "03" * 8
    future = time.time_ns() + 10 * 86_400 * 10**9
    bad["startTimeUnixNano"], bad["endTimeUnixNano"] = str(future), str(future + 1)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append("not a span")
    with live.client(live.token("collector", "submit")) as c:
        r = c.post("/v1/traces", json=doc)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "future" in partial["errorMessage"]
    assert len([e for e in stored(live.home) if e.get("tool") == "goodtool"]) == 1


def test_attacks_on_the_receiver_store_nothing(live: LiveServer) -> None:
    before = len(stored(live.home))
    token = live.token("collector", "submit")
    with live.client(token) as c:
        junk = c.post("/v1/traces", content=b"\xff\x00garbage",
                      headers={"Content-Type": "application/x-protobuf"})
        assert junk.status_code == 400 and junk.json()["error"]["code"] == "bad_request"
        wrong = c.post("/v1/traces", content=b"{}", headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 415
        bomb = gzip.compress(b"\x00" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
        assert len(bomb) < 1 << 20
        r = c.post("/v1/traces", content=bomb, headers={
            "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
        assert r.status_code == 413
        corrupt = c.post("/v1/traces", content=b"\x1f\x8b\x08\x00garbage", headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert corrupt.status_code == 400
        truncated = c.post("/v1/traces", content=gzip.compress(b'{"resourceSpans": []}')[:-8],
                           headers={"Content-Type": "application/json",
                                    "Content-Encoding": "gzip"})
        assert truncated.status_code == 400
        deep = gzip.compress(b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}")
        r = c.post("/v1/traces", content=deep, headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
        listy = c.post("/v1/traces", json=[1, 2, 3])
        assert listy.status_code == 400
        too_big = c.post("/v1/logs", content=b"x" * (2 << 20),
                         headers={"Content-Type": "application/json"})
        assert too_big.status_code == 413
    with live.client(live.token("viewer", "read")) as c:
        assert c.post("/v1/traces", json=span_json("0a" * 16, "0b" * 8, "x")).status_code == 403
    with httpx.Client(base_url=live.url) as c:
        assert c.post("/v1/logs", json={}).status_code == 401
    assert len(stored(live.home)) == before


def test_a_second_server_on_the_same_workspace_shares_the_dedup(tmp_path: Path) -> None:
    """Two receivers (say, a restart) given the same span store it once."""
    home = new_workspace(tmp_path / "ws")
    doc = span_json("0c" * 16, "0d" * 8, "restarttool")
    token = TokenStore(home).new("c", "submit")[0]
    for _ in range(2):
        server = start(home, "--no-scheduler")
        try:
            with server.client(token) as c:
                assert c.post("/v1/traces", json=doc).status_code == 200
        finally:
            assert server.stop()[0] == 0
    assert len([e for e in stored(home) if e.get("tool") == "restarttool"]) == 1


def test_every_stored_event_carries_the_submitting_tokens_name_as_source(
        live: LiveServer) -> None:
    """A sender cannot choose its ``source``: span, resource and ``ouro.`` attributes named
    ``source`` are not it; the token that posted the span is."""
    doc = span_json("5e" * 16, "5f" * 8, "sourced_tool")
    resource = doc["resourceSpans"][0]["resource"]["attributes"]
    resource.append({"key": "source", "value": {"stringValue": "local"}})
    resource.append({"key": "ouro.source", "value": {"stringValue": "local"}})
    attrs = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attrs += [{"key": "source", "value": {"stringValue": "local"}},
              {"key": "ouro.source", "value": {"stringValue": "local"}}]
    log = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "sourced-agent"}},
        {"key": "ouro.source", "value": {"stringValue": "local"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": str(time.time_ns()),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (
                ("ouro.event_type", "feedback"), ("ouro.agent", "sourced-agent"),
                ("ouro.rating", "down"), ("ouro.source", "local"), ("source", "local"))]}]}]}]}
    with live.client(live.token("otlp-source-a", "submit")) as c:
        assert c.post("/v1/traces", json=doc).status_code == 200
    with live.client(live.token("otlp-source-b", "submit")) as c:
        assert c.post("/v1/logs", json=log).status_code == 200
    events = stored(live.home)
    mine = [e for e in events if e.get("tool") == "sourced_tool"]
    assert [e["source"] for e in mine] == ["otlp-source-a"]
    feedback = [e for e in events if e.get("agent") == "sourced-agent"]
    assert [e["source"] for e in feedback] == ["otlp-source-b"]


def test_a_token_cannot_take_a_reserved_source_name(tmp_path: Path) -> None:
    from ouroboros.kernel import UsageError

    for reserved in ("local", "unknown", "LOCAL"):
        with pytest.raises(UsageError, match="reserved"):
            TokenStore(tmp_path).new(reserved, "submit")
