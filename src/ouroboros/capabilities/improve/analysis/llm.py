"""The optional LLM analyser: the plan's EvalAgent prompt over sanitized summaries.

It never sees events, only the aggregates of :class:`Aggregate` (counts, rates,
p95s, folded error patterns) and the rule-based findings, and even those pass the
sanitizer once more before the request is built, fenced as data (error messages in
telemetry are text anyone could have written). What comes back is untrusted text:
it is parsed as JSON, validated field by field, sanitized, markdown-escaped (it ends
up in proposal files), and marked with its source. Then :func:`verify` checks each
finding against the same aggregates: one the rules do not reproduce is marked
unverified, kept at severity low, and never proposed or alerted. Requests go through
the shared client (`ouroboros.capabilities.llm`): an overall deadline, bounded
retries, a size cap and validated answers. Any OpenAI-compatible endpoint works
(``OURO_LLM_BASE_URL``, ``OURO_LLM_MODEL``, ``OURO_LLM_API_KEY``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from ouroboros.capabilities.improve.analysis.aggregate import Aggregate, aggregate
from ouroboros.capabilities.improve.analysis.findings import KINDS, SEVERITIES, Finding, Thresholds
from ouroboros.capabilities.improve.analysis.rules import findings_of
from ouroboros.capabilities.improve.intake.events import NAME_FIELDS
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer
from ouroboros.capabilities.llm import LLMConfig as ClientConfig
from ouroboros.capabilities.llm import LLMError, OpenAICompatibleProvider
from ouroboros.capabilities.llm.untrusted import FENCE_RULE, escape_markdown, fence

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
    'Reply {"findings": []} when nothing is worth a proposal. '
    + FENCE_RULE
)
#: How an unverified finding says so, first in its evidence.
UNVERIFIED = "unverified: the rules do not reproduce this from the stored telemetry"


class LLMAnalysisError(RuntimeError):
    """The endpoint failed or answered something that is not the requested JSON."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="unused", repr=False)
    timeout_s: float | None = None  # None: the analyser's own default
    backoff_s: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMConfig | None:
        """The configured endpoint, or None when ``OURO_LLM_BASE_URL``/``MODEL`` are unset.

        Raises:
            LLMAnalysisError: OURO_LLM_TIMEOUT or OURO_LLM_BACKOFF is not a number.
        """
        env = os.environ if env is None else env
        base_url, model = env.get("OURO_LLM_BASE_URL"), env.get("OURO_LLM_MODEL")
        if not base_url or not model:
            return None
        try:
            shared = ClientConfig.resolve({}, env)
        except LLMError as e:
            raise LLMAnalysisError(str(e)) from None
        return cls(base_url, model, env.get("OURO_LLM_API_KEY") or "unused",
                   shared.timeout_s if env.get("OURO_LLM_TIMEOUT") else None,
                   shared.backoff_s if env.get("OURO_LLM_BACKOFF") else None)


class LLMAnalyser:
    """Asks an OpenAI-compatible model for findings over sanitized aggregates."""

    def __init__(
        self, config: LLMConfig, *, sanitizer: Sanitizer | None = None, timeout: float = 60.0,
        max_retries: int = 2, backoff_s: float = 1.0,
    ) -> None:
        self.config = config
        self.sanitizer = sanitizer or Sanitizer()
        self.client = OpenAICompatibleProvider(ClientConfig(
            base_url=config.base_url, model=config.model, api_key=config.api_key,
            timeout_s=config.timeout_s or timeout, temperature=0, max_retries=max_retries,
            backoff_s=config.backoff_s if config.backoff_s is not None else backoff_s))

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
        return PROMPT_TEMPLATE.format(telemetry_jsonl=fence(telemetry, "telemetry"),
                                      error_reports_json=fence(reports, "error reports"))

    def _clean(self, value: Any, key: str = "") -> Any:
        """Defence in depth: the summaries come from sanitized events, sanitize again
        (names as names: a tool called ``b64tool`` must keep the name rules found)."""
        if isinstance(value, str):
            return self.sanitizer.name(value) if key in NAME_FIELDS else self.sanitizer.text(value)
        if isinstance(value, Mapping):
            return {self.sanitizer.name(str(k)): self._clean(v, str(k)) for k, v in value.items()}
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
        return self.analyse_aggregate(agg, findings_of(agg))

    def analyse_aggregate(self, agg: Aggregate, findings: Iterable[Finding]) -> list[Finding]:
        """The model's findings, each verified against `agg` (see :func:`verify`).

        Raises: LLMAnalysisError: the endpoint failed or the answer is unusable.
        """
        rule_findings = list(findings)
        try:
            reply = self.client.chat([
                {"role": "system", "content": RESPONSE_FORMAT},
                {"role": "user", "content": self.prompt(agg, rule_findings)},
            ])
        except LLMError as e:
            raise LLMAnalysisError(
                f"LLM endpoint {self.config.base_url} failed ({type(e).__name__}: {e}); "
                "check OURO_LLM_BASE_URL and OURO_LLM_MODEL"
            ) from e
        return verify(self.parse(reply.content), rule_findings, agg)

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
            return self.sanitizer.name(value)[:128] if isinstance(value, str) and value else None

        def words(text: str) -> str:  # it lands in proposal markdown: escaped, one line
            return escape_markdown(self.sanitizer.text(text)[:500])

        return Finding(
            kind=kind,
            severity=severity,
            tool=name("tool"),
            agent=name("agent"),
            summary=words(summary),
            evidence=(
                *(words(e) for e in evidence_list[:10]),
                f"source: llm {escape_markdown(self.config.model)}",
            ),
            count=count
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0
            else 0,
            metrics={"llm": 1.0},
        )


_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def verify(llm_findings: Iterable[Finding], rule_findings: Iterable[Finding],
           agg: Aggregate) -> list[Finding]:
    """Each LLM finding checked against what the rules find in the same aggregates.

    Reproduced (a rule finding of the same kind about the same tool or agent): kept, with
    the rule's measured severity and count (a model never raises either) and
    ``metrics["verified"] = 1``. Otherwise: severity low, the first evidence line says it is
    unverified and what the telemetry does show for its subject, ``verified = 0``; the
    proposals step skips it and nothing alerts on it.
    """
    rules = list(rule_findings)
    out = []
    for f in llm_findings:
        match = next((r for r in rules if r.kind == f.kind and (
            (f.tool is not None and r.tool == f.tool)
            or (f.agent is not None and r.agent == f.agent and f.tool is None))), None)
        if match is not None:  # the less severe of the two: the model may lower, never raise
            severity = max(f.severity, match.severity, key=lambda s: _RANK.get(s, 0))
            out.append(replace(f, severity=severity, count=match.count,
                               metrics={**f.metrics, "verified": 1.0}))
            continue
        out.append(replace(
            f, severity="low", count=0, metrics={**f.metrics, "verified": 0.0},
            evidence=(f"{UNVERIFIED} ({_observed(agg, f)})", *f.evidence)))
    return out


def is_verified(finding: Finding) -> bool:
    """Rule findings, and LLM findings :func:`verify` reproduced."""
    return "llm" not in finding.metrics or finding.metrics.get("verified") == 1.0


def _observed(agg: Aggregate, f: Finding) -> str:
    if f.tool is not None:
        stats = agg.recent.get(f.tool)
        if stats is None:
            return f"no calls of tool {escape_markdown(f.tool)} in the window"
        return (f"tool {escape_markdown(f.tool)}: {stats.calls} calls, {stats.failures} "
                f"failures, {stats.timeouts} timeouts in the window")
    if f.agent is not None:
        corrections = sum(agg.corrections.get(f.agent, {}).values())
        return f"agent {escape_markdown(f.agent)}: {corrections} corrections in the window"
    return "no tool or agent named"
