"""The telemetry store and the collectors: daily files, retention, crash safety, bad input."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.intake.collectors import ingest
from ouroboros.capabilities.improve.intake.events import EventError, normalise_event
from ouroboros.capabilities.improve.intake.store import ReadStats, TelemetryStore
from ouroboros.capabilities.improve.intake.synthetic import (
    SECRET_KINDS,
    planted_secret,
    secret_core,
)

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def event(minutes_ago: float = 5, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "timestamp": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "event_type": "tool_call",
        "agent": "ResearchAgent",
        "tool": "web_search",
        "success": True,
        "latency_ms": 120,
    }
    base.update(fields)
    return base


@pytest.fixture
def store(tmp_path: Path) -> TelemetryStore:
    return TelemetryStore(tmp_path / "home", clock=lambda: NOW)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def stored_text(store: TelemetryStore) -> str:
    return "".join(p.read_text() for p in sorted(store.root.glob("*.jsonl")))


def test_events_land_in_daily_files_by_timestamp(store: TelemetryStore) -> None:
    store.record(event(minutes_ago=30))
    store.record(event(minutes_ago=60 * 5))
    assert sorted(p.name for p in store.root.iterdir()) == ["2026-01-09.jsonl", "2026-01-10.jsonl"]
    assert [e["timestamp"] for e in store.events()] == [
        "2026-01-09T21:00:00.000Z",
        "2026-01-10T01:30:00.000Z",
    ]


def test_retention_prunes_files_older_than_thirty_days(tmp_path: Path) -> None:
    clock = [NOW - timedelta(days=40)]
    store = TelemetryStore(tmp_path, clock=lambda: clock[0])
    store.record(event(minutes_ago=60 * 24 * 40))
    old_file = store.root / "2025-12-01.jsonl"
    assert old_file.exists()
    clock[0] = NOW
    store.record(event())
    assert not old_file.exists()
    assert [p.name for p in store.root.iterdir()] == ["2026-01-10.jsonl"]


def test_a_torn_last_line_is_skipped_and_sealed_before_the_next_append(
    store: TelemetryStore,
) -> None:
    store.record(event(minutes_ago=10))
    day = store.root / "2026-01-10.jsonl"
    with day.open("ab") as handle:  # a crash in the middle of a write
        handle.write(b'{"timestamp": "2026-01-10T01:55:00.000Z", "event_ty')
    stats = ReadStats()
    assert len(list(store.events(stats=stats))) == 1
    assert stats.partial == 1
    store.record(event(minutes_ago=1))
    stats = ReadStats()
    events = list(store.events(stats=stats))
    assert [e["timestamp"][11:16] for e in events] == ["01:50", "01:59"]
    assert (stats.partial, stats.corrupt) == (0, 1)  # the sealed fragment, not a glued record


def test_ingest_counts_malformed_lines_with_numbers_and_reasons(
    store: TelemetryStore, tmp_path: Path
) -> None:
    leaked = "ghp_" + "a1B2c3D4" * 4 + "zzzz"
    path = write_lines(
        tmp_path / "in.jsonl",
        [
            json.dumps(event()),
            "this is not json " + leaked,
            json.dumps("just a string"),
            json.dumps(event(event_type="chat_message", text=leaked)),
            json.dumps(event(tool=None)),
            json.dumps(event(latency_ms=-4)),
            json.dumps(event(timestamp="yesterday-ish " + leaked)),
            json.dumps(event(correction_type="x", event_type="user_correction")),
            json.dumps(
                event(event_type="user_correction", correction_type="the user said " + leaked)
            ),
            json.dumps(event(minutes_ago=-3 * 24 * 60)),
            json.dumps(event(minutes_ago=40 * 24 * 60)),
            json.dumps(event(success=False, error_message=f"token {leaked} refused")),
        ],
    )
    report = ingest([path], store)
    reasons = {m.line: m.reason for m in report.malformed}
    assert reasons == {
        2: "not valid JSON",
        3: "expected a JSON object",
        4: "event_type: expected one of tool_call, user_correction, task_failure, feedback, escalation",
        5: "tool_call: missing tool",
        6: "latency_ms: must be a finite, non-negative number",
        7: "timestamp: not ISO 8601",
        9: "correction_type: must match [A-Za-z0-9_.:\\-]{1,64}",
        10: "timestamp: more than a day in the future",
    }
    assert (report.stored, report.expired, report.malformed_count) == (3, 1, 8)
    assert report.redactions["secret"] == 1
    text = stored_text(store)
    assert leaked not in text and leaked[:12] not in text
    assert all(leaked not in r for r in reasons.values())


def test_unknown_fields_are_dropped_so_user_content_is_never_stored(
    store: TelemetryStore, tmp_path: Path
) -> None:
    record = event(
        event_type="user_correction",
        correction_type="factual_error",
        user_message="my address is 1 Elm St",
    )
    record.pop("tool")
    report = ingest([write_lines(tmp_path / "c.jsonl", [json.dumps(record)])], store)
    assert (report.stored, report.dropped_fields) == (1, 3)  # user_message, success, latency_ms
    stored = next(iter(store.events()))
    assert stored["correction_type"] == "factual_error" and "user_message" not in stored
    assert "Elm" not in stored_text(store)


def test_an_unreadable_file_is_reported_and_the_rest_ingested(
    store: TelemetryStore, tmp_path: Path
) -> None:
    good = write_lines(tmp_path / "good.jsonl", [json.dumps(event())])
    report = ingest([tmp_path / "missing.jsonl", good], store)
    assert report.unreadable == ["missing.jsonl: No such file or directory"]
    assert report.stored == 1


def otlp_span(
    name: str, attrs: dict[str, object], *, error: str | None = None
) -> dict[str, object]:
    start = int((NOW - timedelta(minutes=10)).timestamp() * 1e9)

    def value(v: object) -> dict[str, object]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": v}

    span: dict[str, object] = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": name,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 2_500_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
        "status": {"code": 2, "message": error} if error else {},
    }
    return span


def test_otlp_json_spans_become_tool_call_events(store: TelemetryStore, tmp_path: Path) -> None:
    secret = planted_secret("openai_api_key", random.Random(3))
    request = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "ResearchAgent"}}
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "agent"},
                        "spans": [
                            otlp_span(
                                "execute_tool web_search",
                                {
                                    "gen_ai.operation.name": "execute_tool",
                                    "gen_ai.tool.name": "web_search",
                                    "error.type": "TIMEOUT",
                                    "session.id": "conv-1",
                                },
                                error=f"timed out calling https://api.search.example/q?key={secret}",
                            ),
                            otlp_span("GET /health", {"http.request.method": "GET"}),
                            otlp_span("execute_tool", {"gen_ai.tool.name": "fetch_page"})
                            | {"startTimeUnixNano": "x"},
                            otlp_span(
                                "correction",
                                {
                                    "ouro.event_type": "user_correction",
                                    "ouro.correction_type": "rephrase",
                                    "gen_ai.agent.name": "CodeAgent",
                                },
                            ),
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(request, indent=2))  # pretty-printed: one document over many lines
    report = ingest([path], store)
    assert (report.stored, report.skipped_spans, report.malformed_count) == (2, 1, 1)
    assert report.malformed[0].where() == "spans.json:1 span 3"
    assert report.malformed[0].reason == "span: startTimeUnixNano is not an integer"
    tool_call, correction = sorted(store.events(), key=lambda e: e["event_type"])
    assert tool_call == {
        "timestamp": "2026-01-10T01:50:00.000Z",
        "event_type": "tool_call",
        "agent": "ResearchAgent",
        "session_id": tool_call["session_id"],
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
        "tool": "web_search",
        "success": False,
        "error_code": "TIMEOUT",
        "error_message": "timed out calling https://api.search.example",
        "latency_ms": 2500.0,
        "source": "local",  # file ingest is the operator's: the runtime's own source
    }
    assert tool_call["session_id"].startswith("s-")
    assert correction["agent"] == "CodeAgent" and correction["correction_type"] == "rephrase"
    assert secret_core("openai_api_key", secret) not in stored_text(store)


def test_runtime_collectors_record_tool_runs_and_patch_outcomes(store: TelemetryStore) -> None:
    store.record_tool_run(tool="skill.summarise", agent="skills", success=True, latency_ms=12.5)
    store.record_patch_outcome(
        status="rejected", patch_type="skill", author="skills", stage="test",
        reason="test failed reading /home/bob/case.json",
    )  # fmt: skip
    store.record_patch_outcome(status="applied", patch_type="bytecode", author="flux")
    run, rejected, applied = list(store.events())
    assert run["success"] is True and run["tool"] == "skill.summarise"
    assert rejected["tool"] == "patch.skill" and rejected["error_code"] == "REJECTED_TEST"
    assert rejected["error_message"] == "test failed reading <path>"
    assert applied["success"] is True and "error_code" not in applied


def test_record_rejects_invalid_events_without_writing(store: TelemetryStore) -> None:
    with pytest.raises(EventError, match="tool_call: missing success"):
        store.record({"timestamp": NOW.isoformat(), "event_type": "tool_call", "tool": "x"})
    assert not store.root.exists() or not list(store.root.iterdir())


@pytest.mark.parametrize(
    ("raw", "rating"),
    [({"rating": "down"}, "down"), ({"thumbs_up": True}, "up"), ({"thumbs_down": True}, "down")],
)
def test_feedback_spellings_normalise_to_one_rating(raw: dict[str, object], rating: str) -> None:
    record = {"timestamp": 1767996000, "event_type": "feedback", "agent": "A", **raw}
    assert normalise_event(record).event["rating"] == rating
    assert normalise_event(record).event["timestamp"] == "2026-01-09T22:00:00.000Z"


_FIELDS = ("agent", "tool", "error_code", "error_message", "session_id", "task_name", "error_category",
           "correction_type", "reason_category", "prompt", "trace_id")  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ("tool_call", "task_failure", "user_correction", "feedback", "escalation", "x")
            ),
            st.sampled_from(_FIELDS),
            st.sampled_from(SECRET_KINDS),
            st.integers(0, 2**32),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_planted_secret_is_ever_stored_whatever_the_line(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str, int, bool]]
) -> None:
    home = tmp_path_factory.mktemp("h")
    store = TelemetryStore(home, clock=lambda: NOW)
    lines, secrets = [], []
    for event_type, field_name, kind, seed, truncate in rows:
        secret = planted_secret(kind, random.Random(seed))
        secrets.append(secret_core(kind, secret))
        fields = {
            "task_name": "t",
            "error_category": "E",
            "correction_type": "c",
            "reason_category": "r",
        }
        record = event(event_type=event_type, rating="up", **(fields | {field_name: secret}))
        line = json.dumps(record)
        lines.append(line[: len(line) // 2] if truncate else line)
    report = ingest([write_lines(home / "in.jsonl", lines)], store)
    assert report.records == report.stored + report.malformed_count + report.expired == len(rows)
    text = stored_text(store) + json.dumps(report.as_dict())
    assert not [s for s in secrets if s in text]


def test_a_long_message_is_cut_at_a_word_boundary_never_inside_a_secret(
    store: TelemetryStore,
) -> None:
    token = planted_secret("github_token", random.Random(9))
    message = "x " * 245 + token + " tail"  # the token straddles the 500-character cut
    stored = store.record(event(success=False, error_message=message))
    assert stored["error_message"] == ("x " * 245).rstrip() + "…"
    assert token[:8] not in stored["error_message"]


def test_an_oversized_line_is_reported_without_being_loaded(
    store: TelemetryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ouroboros.capabilities.improve.intake import collectors

    monkeypatch.setattr(collectors, "MAX_LINE_BYTES", 300)
    path = write_lines(
        tmp_path / "big.jsonl", [json.dumps(event(error_message="y" * 900)), json.dumps(event())]
    )
    report = ingest([path], store)
    assert [(m.line, m.reason) for m in report.malformed] == [(1, "line longer than 300 bytes")]
    assert (report.records, report.stored) == (2, 1)


def test_otlp_file_exporter_lines_each_hold_a_request(
    store: TelemetryStore, tmp_path: Path
) -> None:
    def request(tool: str, error: str | None) -> str:
        span = otlp_span(
            f"execute_tool {tool}", {"gen_ai.operation.name": "execute_tool"}, error=error
        )
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})

    path = write_lines(
        tmp_path / "otlp.jsonl", [request("web_search", "deadline hit"), request("fetch", None)]
    )
    report = ingest([path], store)
    assert (report.stored, report.malformed_count) == (2, 0)
    by_tool = {e["tool"]: e for e in store.events()}
    assert (
        by_tool["web_search"]["success"] is False and by_tool["web_search"]["error_code"] == "ERROR"
    )
    assert by_tool["web_search"]["error_message"] == "deadline hit"
    assert by_tool["fetch"]["success"] is True and "agent" not in by_tool["fetch"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(("resourceSpans", "scopeSpans", "spans", "attributes", "key", "value", "stringValue",
                         "intValue", "startTimeUnixNano", "endTimeUnixNano", "status", "code", "name",
                         "timestamp", "event_type", "tool", "success", "x")),
        children, max_size=5),
    max_leaves=25,
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_JSON, min_size=1, max_size=5))
def test_ingest_never_crashes_on_arbitrary_json(
    tmp_path_factory: pytest.TempPathFactory, documents: list[object]
) -> None:
    home = tmp_path_factory.mktemp("j")
    store = TelemetryStore(home, clock=lambda: NOW)
    path = write_lines(home / "any.jsonl", [json.dumps(d) for d in documents])
    report = ingest([path], store)
    assert report.records == report.stored + report.malformed_count + report.expired
    assert all(m.reason and m.line >= 1 for m in report.malformed)
