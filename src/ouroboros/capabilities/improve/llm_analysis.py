"""The optional LLM analyser: the plan's EvalAgent prompt over sanitized summaries.

It never sees events, only the aggregates of :class:`Aggregate` (counts, rates,
p95s, folded error patterns) and the rule-based findings, and even those pass the
sanitizer once more before the request is built. What comes back is untrusted
text: it is parsed as JSON, validated field by field, sanitized, and marked with
its source. Any OpenAI-compatible endpoint works (``OURO_LLM_BASE_URL``,
``OURO_LLM_MODEL``, ``OURO_LLM_API_KEY``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ouroboros.capabilities.improve.analysis import (
    KINDS,
    SEVERITIES,
    Aggregate,
    Finding,
    Thresholds,
    aggregate,
)
from ouroboros.capabilities.improve.sanitizer import Sanitizer

#: The plan's evaluation prompt, verbatim.
PROMPT_TEMPLATE = """You are reviewing sanitized telemetry from the past 24 hours.
Your optimization priority is: STABILITY > PERFORMANCE > CAPABILITY.

Analyze the following telemetry events and error reports.
Identify issues that impact system reliability.

For each issue worth addressing, output a proposal in the specified format.
Only propose changes if:
- The issue occurred 3+ times, OR
- The issue is severity:critical, OR
- There's a clear pattern indicating systemic problem

Do NOT propose:
- New features or capabilities (unless directly fixing errors)
- Performance optimizations (unless causing failures)
- Cosmetic changes

Telemetry data:
{telemetry_jsonl}

Error reports:
{error_reports_json}
"""

#: "The specified format": what we can parse into :class:`Finding` values.
RESPONSE_FORMAT = (
    'Reply with only a JSON object {"findings": [...]} where each finding has: '
    f'"kind" (one of {", ".join(KINDS)}), "severity" (one of {", ".join(SEVERITIES)}), '
    '"tool" (string or null), "agent" (string or null), "summary" (one sentence), '
    '"evidence" (list of short strings) and "count" (integer). '
    'Reply {"findings": []} when nothing is worth a proposal.'
)


class LLMAnalysisError(RuntimeError):
    """The endpoint failed or answered something that is not the requested JSON."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = "unused"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMConfig | None:
        """The configured endpoint, or None when ``OURO_LLM_BASE_URL``/``MODEL`` are unset."""
        env = os.environ if env is None else env
        base_url, model = env.get("OURO_LLM_BASE_URL"), env.get("OURO_LLM_MODEL")
        if not base_url or not model:
            return None
        return cls(base_url, model, env.get("OURO_LLM_API_KEY") or "unused")


class LLMAnalyser:
    """Asks an OpenAI-compatible model for findings over sanitized aggregates."""

    def __init__(
        self, config: LLMConfig, *, sanitizer: Sanitizer | None = None, timeout: float = 60.0
    ) -> None:
        from openai import OpenAI

        self.config = config
        self.sanitizer = sanitizer or Sanitizer()
        self.client = OpenAI(
            base_url=config.base_url, api_key=config.api_key, timeout=timeout, max_retries=0
        )

    def prompt(self, agg: Aggregate, findings: Iterable[Finding]) -> str:
        summary = agg.summary()
        lines = [{"section": "window", **summary["window"], "events": summary["events"]}]
        lines += [{"section": "tool", "tool": t, **stats} for t, stats in summary["tools"].items()]
        lines += [{"section": "error_pattern", **p} for p in summary["error_patterns"]]
        lines += [
            {"section": "corrections", "agent": a, "types": t}
            for a, t in summary["corrections"].items()
        ]
        lines += [
            {"section": "task_failures", "task_name": t, "count": n}
            for t, n in summary["task_failures"].items()
        ]
        lines += [{"section": "escalation", **e} for e in summary["escalations"]]
        telemetry = "\n".join(json.dumps(self._clean(line), sort_keys=True) for line in lines)
        reports = json.dumps([self._clean(asdict(f)) for f in findings], indent=1, sort_keys=True)
        return PROMPT_TEMPLATE.format(telemetry_jsonl=telemetry, error_reports_json=reports)

    def _clean(self, value: Any) -> Any:
        """Defence in depth: the summaries come from sanitized events, sanitize again."""
        if isinstance(value, str):
            return self.sanitizer.text(value)
        if isinstance(value, Mapping):
            return {self.sanitizer.text(str(k)): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def analyse(
        self,
        events: Iterable[Mapping[str, Any]],
        now: datetime,
        thresholds: Thresholds | None = None,
    ) -> list[Finding]:
        agg = aggregate(events, now, thresholds)
        return self.analyse_aggregate(agg, agg.findings())

    def analyse_aggregate(self, agg: Aggregate, findings: Iterable[Finding]) -> list[Finding]:
        """Raises: LLMAnalysisError: the endpoint failed or the answer is unusable."""
        from openai import OpenAIError

        try:
            response = self.client.chat.completions.create(
                model=self.config.model,
                temperature=0,
                messages=[
                    {"role": "system", "content": RESPONSE_FORMAT},
                    {"role": "user", "content": self.prompt(agg, findings)},
                ],
            )
        except OpenAIError as e:
            raise LLMAnalysisError(
                f"LLM endpoint {self.config.base_url} failed ({type(e).__name__}); "
                "check OURO_LLM_BASE_URL and OURO_LLM_MODEL"
            ) from e
        content = response.choices[0].message.content if response.choices else None
        return self.parse(content or "")

    def parse(self, content: str) -> list[Finding]:
        """Validates the model's JSON answer into sanitized findings."""
        text = content.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LLMAnalysisError('LLM answer is not JSON; expected {"findings": [...]}') from e
        items = data.get("findings") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise LLMAnalysisError('LLM answer has no "findings" list')
        return [f for f in (self._finding(item) for item in items) if f is not None]

    def _finding(self, item: object) -> Finding | None:
        if not isinstance(item, Mapping):
            return None
        kind, severity, summary = item.get("kind"), item.get("severity"), item.get("summary")
        if (
            kind not in KINDS
            or severity not in SEVERITIES
            or not isinstance(summary, str)
            or not summary
        ):
            return None
        evidence = item.get("evidence")
        evidence_list = (
            [e for e in evidence if isinstance(e, str)] if isinstance(evidence, list) else []
        )
        count = item.get("count")

        def name(key: str) -> str | None:
            value = item.get(key)
            return self.sanitizer.text(value)[:128] if isinstance(value, str) and value else None

        return Finding(
            kind=kind,
            severity=severity,
            tool=name("tool"),
            agent=name("agent"),
            summary=self.sanitizer.text(summary)[:500],
            evidence=(
                *(self.sanitizer.text(e)[:500] for e in evidence_list[:10]),
                f"source: llm {self.config.model}",
            ),
            count=count
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0
            else 0,
            metrics={"llm": 1.0},
        )
