"""The LLM analyser against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from ouroboros.capabilities.improve.analysis import aggregate, findings_of
from ouroboros.capabilities.improve.analysis.llm import LLMAnalyser, LLMAnalysisError, LLMConfig
from ouroboros.capabilities.improve.intake import synthetic as syn
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

from .conftest import ScriptedLLM

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def sanitized_events() -> list[dict[str, object]]:
    faults = [
        syn.Timeouts(start=NOW - timedelta(hours=6), end=NOW - timedelta(hours=3), rate=0.7),
        syn.LeakedSecrets(start=NOW - timedelta(hours=12), end=NOW, rate=0.2),
    ]
    raw = syn.generate(NOW - timedelta(days=2), NOW, events_per_hour=300, faults=faults, seed=5)
    return list(Sanitizer().events(raw))


def analyser(llm: ScriptedLLM) -> LLMAnalyser:
    return LLMAnalyser(LLMConfig(base_url=llm.base_url, model="eval-test", api_key="k"),
                       backoff_s=0.001)


def test_findings_come_back_validated_and_marked(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.answers.append(
        "```json\n"
        + json.dumps(
            {
                "findings": [
                    {"kind": "timeout_cluster", "severity": "high", "tool": "web_search",
                     "agent": "ResearchAgent", "summary": "web_search times out in bursts",
                     "evidence": ["see 10.1.2.3 and ghp_" + "x1Y2" * 9], "count": 40},
                    {"kind": "new_feature", "severity": "low", "summary": "add a tool"},
                    {"kind": "error_pattern", "severity": "urgent", "summary": "bad severity"},
                ]
            }
        )
        + "\n```"
    )  # fmt: skip
    events = sanitized_events()
    (finding,) = analyser(scripted_llm).analyse(events, NOW)
    (rule,) = [f for f in findings_of(aggregate(events, NOW)) if f.kind == "timeout_cluster"]
    # reproduced by the rules: the measured count replaces the model's claim of 40
    assert (finding.kind, finding.severity, finding.tool, finding.count) == (
        "timeout_cluster", "high", "web_search", rule.count,
    )  # fmt: skip
    assert finding.evidence == (  # sanitized, then escaped for markdown
        "see \\<ip:private\\> and \\<secret:github-pat\\>",
        "source: llm eval-test",
    )
    assert finding.metrics == {"llm": 1.0, "verified": 1.0}


def test_the_prompt_is_the_plan_template_over_summaries_without_secrets(
    scripted_llm: ScriptedLLM,
) -> None:
    events = sanitized_events()
    analyser(scripted_llm).analyse(events, NOW)
    (request,) = scripted_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "eval-test"
    prompt = request["body"]["messages"][1]["content"]
    assert prompt.startswith("You are reviewing sanitized telemetry from the past 24 hours.")
    assert "Your optimization priority is: STABILITY > PERFORMANCE > CAPABILITY." in prompt
    assert '"section": "tool", "timeouts"' in prompt and "web_search" in prompt
    assert "Error reports:\n<<<DATA id=" in prompt and '"kind": "timeout_cluster"' in prompt
    assert re.search(r"Telemetry data:\n<<<DATA id=([0-9a-f]{32}) \(telemetry\)\n", prompt)
    assert "session_id" not in prompt and not re.search(r"s-[0-9a-f]{16}", prompt)
    rng = random.Random(0)
    for kind in syn.SECRET_KINDS:  # no planted secret, nor any raw event, reaches the model
        assert syn.secret_core(kind, syn.planted_secret(kind, rng)) not in prompt
    assert len(prompt) < 20_000  # summaries, not the event stream


def test_an_answer_that_is_not_json_is_an_error(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.answers.append("I think web_search is slow.")
    with pytest.raises(LLMAnalysisError, match="not JSON"):
        analyser(scripted_llm).analyse([], NOW)


def test_a_failing_endpoint_is_one_clear_error(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.status = 500
    with pytest.raises(LLMAnalysisError, match=r"LLM endpoint http://127\.0\.0\.1:\d+/v1 failed"):
        analyser(scripted_llm).analyse_aggregate(aggregate([], NOW), [])


def test_config_comes_from_the_environment() -> None:
    assert LLMConfig.from_env({}) is None
    assert LLMConfig.from_env(
        {"OURO_LLM_BASE_URL": "http://x/v1", "OURO_LLM_MODEL": "m"}
    ) == LLMConfig("http://x/v1", "m", "unused")


def test_an_oversized_answer_is_cut_down() -> None:
    analyser = LLMAnalyser(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m"))
    answer = {"findings": [{"kind": "error_pattern", "severity": "low",
                            "summary": "web search times out " * 300,
                            "evidence": [f"e{i}" for i in range(50)], "count": -3,
                            "tool": "search_" * 70}]}  # fmt: skip
    (finding,) = analyser.parse(json.dumps(answer))
    assert 490 <= len(finding.summary) <= 500 and finding.tool == ("search_" * 70)[:128]
    assert finding.evidence[-1] == "source: llm m" and len(finding.evidence) == 11
    assert finding.count == 0
