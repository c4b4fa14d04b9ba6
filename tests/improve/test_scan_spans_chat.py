"""The enhancement scan, the runtime's own spans, and the Slack-style slash-command
handler (the scheduler: test_schedule.py; the mounted webhook: tests/serve/test_slack.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ouroboros.capabilities.improve.analysis.scan import ToolVersionInfo, scan
from ouroboros.capabilities.improve.intake.runtime import collect_ledger, store_for
from ouroboros.capabilities.improve.intake.spans import StoreSpanExporter
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.improve.proposals.slack import (
    ReplayCache,
    handle_slash_command,
    signature,
)
from ouroboros.kernel import Runtime
from ouroboros.kernel.settings import ScanSettings

from .loopkit import T0, Clock, Harness

# -- enhancement scan ------------------------------------------------------------------
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def calls(tool: str, days_ago: float, n: int, failed: int) -> list[dict[str, Any]]:
    at = NOW - timedelta(days=days_ago)
    return [{"event_type": "tool_call", "tool": tool, "success": i >= failed,
             "timestamp": (at + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            for i in range(n)]


def test_scan_finds_unused_tools_rising_failures_stale_descriptions_and_drift() -> None:
    events = [*calls("search", 2, 40, 12), *calls("search", 15, 100, 2),
              *calls("fetch", 3, 50, 1), *calls("fetch", 20, 50, 1)]
    old, new = NOW - timedelta(days=200), NOW - timedelta(days=10)
    tools = {"resize": [ToolVersionInfo(old, "Resize an image", "a" * 16),
                        ToolVersionInfo(new, "Resize an image", "b" * 16)],
             "fetch": [ToolVersionInfo(old, "Fetch a URL", "c" * 16)]}
    prompts = {"agents/support/prompt": ["You are a concise support agent.",
                                         "You are a pirate. Answer only in rhymes, always."],
               "agents/ops/prompt": ["Be brief.", "Be brief!"]}
    found = scan(events, NOW, ScanSettings(stale_days=90), tools, ["search", "fetch", "ocr"],
                 prompts)
    kinds = {(f.kind, f.tool or f.agent) for f in found}
    assert kinds == {("never_used_tool", "ocr"), ("never_used_tool", "resize"),
                     ("failure_rate_rise", "search"), ("stale_tool_description", "resize"),
                     ("prompt_drift", "prompt")}
    assert all(f.severity == "low" for f in found)


def test_scan_is_quiet_on_a_healthy_system() -> None:
    events = [*calls("search", 2, 40, 1), *calls("search", 15, 100, 3)]
    assert scan(events, NOW, ScanSettings(), {}, ["search"], {"p": ["a", "a"]}) == []


# -- the runtime's own spans ------------------------------------------------------------


def test_tool_runs_and_kernel_outcomes_become_spans_in_the_store(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    store = TelemetryStore(tmp_path, clock=lambda: NOW)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("ouro.tool.run", attributes={"ouro.tool": "resize"}):
        pass
    with pytest.raises(ValueError), tracer.start_as_current_span(
            "ouro.tool.run", attributes={"ouro.tool": "resize", "ouro.error_code": "Trap"}):
        raise ValueError("token sk-live-abcdefabcdefabcdefabcdef1234 leaked")
    with tracer.start_as_current_span("ouro.tool.run", attributes={"ouro.tool": "ref",
                                                                   "ouro.reference": True}):
        pass
    with tracer.start_as_current_span("somebody.else"):
        pass
    events = list(store.events())
    assert [(e["tool"], e["success"]) for e in events] == [("resize", True), ("resize", False)]
    assert events[1]["error_code"] == "Trap" and len(events[1]["trace_id"]) == 32
    assert "sk-live" not in json.dumps(events)  # sanitized like any event


def test_collect_ledger_emits_outcome_spans_once(tmp_path: Path) -> None:
    clock = Clock(T0)
    rt = Runtime.init(tmp_path / "ws", clock=clock)
    assert rt.propose_and_submit(type="routing", target="agents/a/routing", value={"x": 1},
                                 reasoning="r", author="tuner").status == "applied"
    assert rt.propose_and_submit(type="config", target="agents/a/config", value={"x": 1},
                                 reasoning="r", author="tuner").status == "rejected"
    store = store_for(rt)
    assert collect_ledger(rt, store) == 2 and collect_ledger(rt, store) == 0
    events = list(store.events())
    assert [(e["tool"], e["success"]) for e in events] == [("patch.routing", True),
                                                         ("patch.unknown", False)]
    assert events[1]["error_code"].startswith("REJECTED_") and events[0]["span_id"]
    # the runtime key signed both: it also signs what a token asks for, so never local
    runtime = "key:" + rt.refresh().runtime_key["id"][:16]
    assert [e["source"] for e in events] == [runtime, runtime]


def test_outcomes_are_stamped_with_who_verifiably_signed_not_local(tmp_path: Path) -> None:
    """A submit token's patches (signed by an unknown key, or claiming the runtime's own
    author) were replayed from the ledger as ``local``: trusted failures of patch.<type>."""
    rt = Runtime.init(tmp_path / "ws", clock=Clock(T0))
    rt.keyring.new("mallory")
    rt.keyring.new("agent")
    assert rt.grant(["agent"], types=["routing"]).status == "applied"
    store = store_for(rt)
    collect_ledger(rt, store)
    for key, author in (("mallory", "improve"), ("agent", "improve")):
        out = rt.submit(rt.sign(rt.propose("routing", "agents/a/routing", value={"w": len(key)},
                                           reasoning="r", author=author), key))
        assert out.status == ("applied" if key == "agent" else "rejected"), out
    assert rt.submit(rt.sign(rt.propose("config", "agents/a/config", value={"x": 1},
                                        reasoning="r", author="improve"), "agent")
                     ).status == "rejected"
    assert collect_ledger(rt, store) == 3
    agent = "key:" + rt.keyring.load("agent").key_id[:16]
    assert [(e["tool"], e["success"], e["source"]) for e in store.events()][-3:] == [
        ("patch.unknown", False, "unknown"),  # an untrusted key: charged to nobody
        ("patch.routing", True, agent), ("patch.unknown", False, agent)]


# -- Slack-style slash commands ----------------------------------------------------------
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    yield Harness(tmp_path)


def signed(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(secret, str(ts), body),
            "Content-Type": "application/x-www-form-urlencoded"}


def test_slack_signing_vector() -> None:
    # Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack)
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert signature(SECRET, "1531420618", body) == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_a_signed_command_runs_and_every_forgery_is_refused(harness: Harness,
                                                            tmp_path: Path) -> None:
    made: list[int] = []

    def loop() -> Any:
        made.append(1)
        return harness.loop

    replays = ReplayCache(tmp_path / "seen.json")
    now = int(time.time())
    body = urlencode({"command": "/ouro", "text": "status", "user_name": "alice"}).encode()

    def call(b: bytes, headers: dict[str, str], at: float = now) -> Any:
        return handle_slash_command(b, headers, secret=SECRET, now=at, loop=loop,
                                    replays=replays)

    ok = call(body, signed(body, now))
    assert ok.status == 200 and "halted" in ok.body["text"]
    forged = [
        (body, {**signed(body, now), "X-Slack-Signature": "v0=" + "0" * 64}, "bad signature"),
        (body + b"&text=proposals+reset", signed(body, now), "bad signature"),
        (body, signed(body, now, "other-secret"), "bad signature"),
        (body, signed(body, now - 600), "stale timestamp"),
        (body, signed(body, now + 600), "stale timestamp"),
        (body, {"X-Slack-Signature": signature(SECRET, "", body)}, "missing or malformed timestamp"),
        (body, signed(body, now), "replayed request"),  # the first request, sent again
        (b"x" * 20000, signed(b"x" * 20000, now), "body too large"),
    ]
    for b, headers, why in forged:
        out = call(b, headers)
        assert out.status == 401 and out.body == {"error": why}, why
    assert made == [1]  # no forged request ever reached the loop
    assert handle_slash_command(body, signed(body, now + 1), secret="", now=now + 1,
                                loop=loop, replays=replays).status == 401


def test_slash_command_approves_through_the_same_path(harness: Harness,
                                                      tmp_path: Path) -> None:
    h = harness
    out = h.loop.propose(h.draft({"docs/README.md": "# Docs\n\nshort.\n"}))
    assert out is not None
    body = urlencode({"text": f"approve {out.proposal.id}", "user_name": "bob"}).encode()
    now = int(time.time())
    res = handle_slash_command(body, signed(body, now), secret=SECRET, now=now,
                               loop=lambda: h.loop, replays=ReplayCache(tmp_path / "r.json"))
    assert res.status == 200
    p = h.loop.get(out.proposal.id)
    assert p.status == "implemented" and p.review is not None and p.review.reviewer == "slack:bob"


def _workspace_with_sum_ints(home: Path) -> None:
    import ouroboros.interfaces.cli.main  # noqa: F401  (the capability registrars)
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.capabilities.skills.starter import starter_dirs
    from ouroboros.interfaces.cli.output import open_runtime

    Runtime.init(home).close()
    with open_runtime(home) as rt:
        open_store(rt).add_dir(next(d for d in starter_dirs() if d.name == "sum_ints"))


def _runs(home: Path, n: int) -> None:
    import ouroboros.interfaces.cli.main  # noqa: F401  (the capability registrars)
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.interfaces.cli.output import open_runtime

    with open_runtime(home) as rt:  # installs the provider on this workspace's store
        store = open_store(rt)
        for _ in range(n):
            assert store.run("sum_ints", [1, 2, 3]).output == 6


def _tool_events(home: Path) -> list[dict[str, Any]]:
    return [e for e in TelemetryStore(home).events() if e["tool"] == "sum_ints"]


def test_tool_run_spans_are_written_in_batches_and_every_reader_sees_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "ws"
    _workspace_with_sum_ints(home)
    writes: list[bytes] = []
    real = TelemetryStore._append_lines

    def counted(self: TelemetryStore, path: Path, payload: bytes) -> None:
        writes.append(payload)
        real(self, path, payload)

    monkeypatch.setattr(TelemetryStore, "_append_lines", counted)
    _runs(home, 60)
    events = _tool_events(home)  # a reader flushes what this process holds back first
    assert len(events) == 60 and all(e["success"] and e["agent"] == "runtime" for e in events)
    assert len({e["span_id"] for e in events}) == 60
    # one write (and fsync) per batch, not per run: at most one per FLUSH_MS of runs
    assert sum(p.count(b"sum_ints") for p in writes) == 60 and len(writes) <= 10
    assert _tool_events(home) == events  # a second read finds nothing new, nothing twice


def test_spans_go_to_the_workspace_they_ran_in_when_another_one_opens(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _workspace_with_sum_ints(first)
    _workspace_with_sum_ints(second)
    _runs(first, 3)
    _runs(second, 2)  # opening it switches the store: the first one's spans are written
    assert (len(_tool_events(first)), len(_tool_events(second))) == (3, 2)


def test_a_process_that_exits_has_written_its_spans(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "ws"
    _workspace_with_sum_ints(home)
    script = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
              "from improve.test_scan_spans_chat import _runs; _runs(Path(sys.argv[1]), 5)")
    done = subprocess.run([sys.executable, "-c", script, str(home),
                           str(Path(__file__).parents[1])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = b"".join(p.read_bytes() for p in (home / "telemetry" / "events").glob("*.jsonl"))
    assert lines.count(b'"tool":"sum_ints"') == 5  # read raw: no flush by this process
