"""``ouro telemetry``: the command contract (--json, exit codes, one-line errors) and the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ouroboros.capabilities.improve.intake.runtime import collect_ledger, store_for
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.telemetry import app, run_demo
from ouroboros.kernel import ManualClock, Runtime

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # the CLI's store runs on the real clock
root = typer.Typer(cls=OuroGroup)  # the error path every `ouro` command has
root.add_typer(app, name="telemetry")
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    Runtime.init(tmp_path / "ws").close()
    return tmp_path / "ws"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(root, ["telemetry", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_generate_ingest_eval_round_trip(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "gen.jsonl"
    code, out = invoke("generate", str(data), "--days", "8", "--rate", "200", "--now", NOW.isoformat(),
                       "--fault", "web-search-timeouts", "--fault", "leaked-secrets", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["events"] > 30_000
    with data.open("a") as handle:
        handle.write("{broken\n")
    code, out = invoke("ingest", str(data), "--home", str(home), "--json")
    report = json.loads(out)
    assert code == 0
    assert report["malformed"] == 1 and report["malformed_lines"][0]["reason"] == "not valid JSON"
    assert report["stored"] == report["records"] - 1 and report["expired"] == 0
    assert report["redactions"]["secret"] > 0
    code, out = invoke("eval", "--home", str(home), "--now", NOW.isoformat(), "--json")
    found = json.loads(out)["findings"]
    assert code == 0
    assert {"error_pattern", "timeout_cluster"} <= {
        f["kind"] for f in found if f["tool"] == "web_search"
    }
    others = [
        f for f in found if f["tool"] != "web_search"
    ]  # the leaked-secrets fault's AUTH_FAILED
    assert all(f["kind"] == "error_pattern" and "AUTH_FAILED" in f["summary"] for f in others)
    assert others  # secrets of different kinds in one error still group into one template
    assert all("<secret>" in f["summary"] for f in others)


def test_human_output_lists_malformed_lines_and_findings(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "e.jsonl"
    lines = [
        json.dumps({"timestamp": (NOW - timedelta(minutes=m)).isoformat(), "event_type": "tool_call",
                    "tool": "db_query", "agent": "OpsAgent", "success": False, "error_code": "DATA_LOSS"})
        for m in range(1, 3)
    ] + ['{"event_type": "tool_call"}']  # fmt: skip
    data.write_text("\n".join(lines) + "\n")
    code, out = invoke("ingest", str(data), "--home", str(home))
    assert code == 0
    assert "stored 2 of 3 records" in out
    assert "malformed e.jsonl:3: timestamp: missing" in out
    code, out = invoke("eval", "--home", str(home), "--now", NOW.isoformat())
    assert code == 0 and "critical" in out and "DATA_LOSS" in out


def test_stats_counts_events_per_day_and_type(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "s.jsonl"
    day = NOW - timedelta(hours=1)
    data.write_text(
        json.dumps(
            {"timestamp": day.isoformat(), "event_type": "feedback", "agent": "A", "rating": "up"}
        )
        + "\n"
    )
    invoke("ingest", str(data), "--home", str(home))
    (Path(home) / "telemetry" / "events" / f"{day:%Y-%m-%d}.jsonl").open("a").write('{"torn')
    code, out = invoke("stats", "--home", str(home), "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["days"] == {f"{day:%Y-%m-%d}": {"feedback": 1}}
    assert (stats["events"], stats["partial_lines"], stats["corrupt_lines"]) == (1, 1, 0)
    code, out = invoke("stats", "--home", str(home))
    assert code == 0 and "skipped 1 torn and 0 corrupt" in out


def test_eval_on_empty_telemetry_says_so(home: Path) -> None:
    code, out = invoke("eval", "--home", str(home))
    assert code == 0 and "no events in the 24 h window" in out and "no findings" not in out
    code, out = invoke("eval", "--home", str(home), "--json", "--now", NOW.isoformat())
    assert json.loads(out) == {"now": NOW.isoformat(), "findings": [], "events_in_window": 0}


def test_bad_usage_is_one_clear_error(home: Path, tmp_path: Path) -> None:
    code, out = invoke("eval", "--home", str(tmp_path / "nowhere"))
    assert code == 2 and "no Ouroboros workspace" in out
    code, out = invoke("eval", "--home", str(home), "--now", "soon")
    assert code == 2 and "--now 'soon' is not an ISO 8601 time" in out
    code, out = invoke("generate", str(tmp_path / "x.jsonl"), "--fault", "meteor")
    assert code == 2 and "meteor" in out and not (tmp_path / "x.jsonl").exists()
    code, out = invoke("eval", "--home", str(home), "--llm")
    assert code == 2 and "--llm needs OURO_LLM_BASE_URL" in out
    code, out = invoke("ingest", str(tmp_path / "missing.jsonl"), "--home", str(home))
    assert code == 2 and "missing.jsonl does not exist" in out


def test_collect_records_patch_outcomes_from_the_ledger_once(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", clock=ManualClock(NOW))
    rt.keyring.new("alice")
    bad = rt.sign(
        rt.propose("prompt", "agents/a/prompt", value="x", reasoning="r", author="alice"), "alice"
    )
    assert rt.submit(bad).status == "rejected"  # alice is not trusted for prompts
    store = store_for(rt)
    assert collect_ledger(rt, store) == 1
    assert collect_ledger(rt, store) == 0  # the cursor remembers
    (event,) = list(store.events())
    assert event["tool"] == "patch.unknown" and event["agent"] == "alice"
    assert event["success"] is False and event["error_code"] == "REJECTED_SIGNATURE"
    rt.close()


def test_run_demo_narrates_ingest_sanitizer_and_findings(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", clock=ManualClock(NOW))
    lines: list[str] = []
    run_demo(rt, lines.append)
    rt.close()
    text = "\n".join(lines)
    assert "malformed 1" in text and "timestamp: missing" in text
    assert "<secret:" in text and "ghp_" not in text
    assert "high: timeout_cluster on web_search" in text
    assert "healthy tools get none" in text


def test_eval_shows_what_it_could_not_analyse(home: Path) -> None:
    """A flood of fresh names that fills a table (``MAX_KEYS``) hides a tool that appears
    after it; lines with an unparseable timestamp are skipped. Neither may pass silently:
    eval names how many (text and --json), and never crashes."""
    from ouroboros.capabilities.improve.analysis.aggregate import MAX_KEYS

    at = NOW - timedelta(hours=1)
    day = home / "telemetry" / "events" / f"{at:%Y-%m-%d}.jsonl"
    day.parent.mkdir(parents=True, exist_ok=True)
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    flood = (json.dumps({"timestamp": ts, "event_type": "tool_call", "tool": f"t{i}",
                         "success": True, "source": "flood"}) for i in range(MAX_KEYS + 7))
    bad = [json.dumps({"timestamp": t, "event_type": "tool_call", "tool": "x",
                       "success": False}) for t in (ts[:14] + "3x" + ts[16:], "soon", 12)]
    day.write_text("\n".join([*flood, *bad]) + "\n")
    code, out = invoke("eval", "--home", str(home), "--now", NOW.isoformat(), "--json")
    assert code == 0
    unseen = json.loads(out)["not_analysed"]
    assert unseen["overflow"] == 7 and unseen["unreadable"] == 3
    code, out = invoke("eval", "--home", str(home), "--now", NOW.isoformat())
    assert code == 0
    assert "overflow: 7 event(s) or name(s) not analysed" in out
    assert "skipped: 3 stored line(s) unreadable" in out


def test_eval_skips_stored_lines_with_fields_of_the_wrong_type(home: Path) -> None:
    """A day file edited by hand (or damaged): a name field holding an object, a list or a
    number, a message that is a number, a latency that is text. Every one crashed eval
    (exit 1, 'internal'); each is now one skipped line, and the good lines still count."""
    at = NOW - timedelta(hours=1)
    day = home / "telemetry" / "events" / f"{at:%Y-%m-%d}.jsonl"
    day.parent.mkdir(parents=True, exist_ok=True)
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    base = {"timestamp": ts, "event_type": "tool_call", "tool": "t", "success": False,
            "error_code": "E", "source": "local"}
    bad = [{"tool": {"a": 1}}, {"tool": ["a"]}, {"tool": 5}, {"error_message": 5},
           {"latency_ms": "slow"}, {"agent": {"x": 1}}, {"session_id": [1]},
           {"event_type": "user_correction", "agent": ["a"], "correction_type": "x"},
           {"event_type": "task_failure", "task_name": "n", "retry_count": "many"}]
    good = [dict(base, latency_ms=5.0) for _ in range(12)]
    day.write_text("".join(json.dumps(dict(base, **b)) + "\n" for b in [*bad, *good]))
    code, out = invoke("eval", "--home", str(home), "--now", NOW.isoformat(), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["not_analysed"]["unreadable"] == len(bad)
    (found,) = [f for f in report["findings"] if f["kind"] == "tool_reliability"]
    assert found["metrics"]["calls"] == 12.0
