"""Writers: a finding in, a draft proposal (with its diff) out, or the reason there is none.

- :class:`RuleWriter`: the planner's templates (offline, the default).
- :class:`LLMWriter` (the seed's WriterAgent): an OpenAI-compatible model writes the diff;
  :func:`preflight.preflight` is its repair loop, as tool creation's tests are: a refused
  answer goes back to the model with the reasons, up to ``max_attempts`` times. It may
  only touch allowed paths, everything it reads from the repository and the finding is
  fenced as untrusted data, its prose is markdown-escaped, and every attempt is recorded
  (``WriterAttempt`` in the ledger, the diff in the blob store).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.intake.secret_scrub import scrub_secrets
from ouroboros.capabilities.improve.proposals.diffs import parse_diff
from ouroboros.capabilities.improve.proposals.planner import AGENTS, TASKS, Draft, plan
from ouroboros.capabilities.improve.proposals.policy import forbidden_path_reasons, matches_any
from ouroboros.capabilities.improve.proposals.preflight import preflight
from ouroboros.capabilities.improve.proposals.repo import GitError, TargetRepo
from ouroboros.capabilities.improve.proposals.target_config import TargetConfig
from ouroboros.capabilities.improve.proposals.yamledit import get
from ouroboros.capabilities.llm import FENCE_RULE, LLMError, LLMProvider, escape_markdown, fence
from ouroboros.kernel.settings import WriterSettings

TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".md", ".txt", ".py", ".sh", ".cfg", ".ini")
MAX_CONTEXT = 48 * 1024
MAX_FILE = 16 * 1024


@dataclass(frozen=True)
class Skip:
    """A finding that produced no proposal, and why."""

    finding: Finding
    reason: str


@dataclass(frozen=True)
class Written:
    drafts: list[Draft] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


class Writer(Protocol):
    name: str

    def write(self, findings: Sequence[Finding], repo: TargetRepo, base: str,
              config: TargetConfig) -> Written: ...


def finding_key(f: Finding) -> str:
    subject = f.tool or f.agent or hashlib.sha256(f.summary.encode()).hexdigest()[:12]
    return f"{f.kind}:{subject}"


def why_no_template(f: Finding, read: Callable[[str], str | None]) -> str:
    """Why the rule templates have nothing for ``f`` (they edit agents.yaml and
    scheduled_tasks.yaml of the example's shape only)."""
    if f.kind == "task_failure_trend":
        return (f"no {TASKS} in the target" if read(TASKS) is None else
                "the task is not configured there, or its retries are at the limit (5)")
    agents = read(AGENTS)
    if agents is None:
        return f"no {AGENTS} in the target: the rule templates only tune it (use the LLM writer)"
    if f.kind == "user_corrections":
        if not f.agent:
            return "corrections spread over several agents: no single persona to change"
        return f"agent {f.agent} has no persona in {AGENTS}, or it already has the guidance"
    if not f.tool:
        return f"no template for a {f.kind} finding without a tool"
    if not isinstance(get(agents, ("tools", f.tool)), dict):
        return f"tool {f.tool} is not configured in {AGENTS}"
    return "the fix is already in place or at its limit (timeout 300 s, 5 retries)"


class RuleWriter:
    """The planner's templates: deterministic, offline, config only."""

    name = "rules"

    def write(self, findings: Sequence[Finding], repo: TargetRepo, base: str,
              config: TargetConfig) -> Written:
        def read(path: str) -> str | None:
            return repo.read(base, path)

        drafts = plan(findings, read)
        covered = {id(f) for d in drafts for f in d.findings}
        used = {(f.kind, f.tool, f.agent, f.summary) for d in drafts for f in d.findings}
        skipped = [Skip(f, why_no_template(f, read)) for f in findings
                   if id(f) not in covered and (f.kind, f.tool, f.agent, f.summary) not in used]
        return Written(drafts, skipped)


# -- the LLM writer ---------------------------------------------------------------------
class _Answer(BaseModel):
    """What the model must answer: a proposal with its diff, or a reasoned refusal."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field("", max_length=200)
    category: Literal["bugfix", "optimization", "enhancement"] = "bugfix"
    problem: str = Field("", max_length=4000)
    root_cause: str = Field("", max_length=4000)
    solution: str = Field("", max_length=4000)
    risk: str = Field("", max_length=4000)
    diff: str = Field("", max_length=4 << 20)
    no_change: str | None = Field(None, max_length=2000)


SYSTEM = f"""You are the WriterAgent of a self-improvement loop. From one finding about a
deployment's telemetry you write the smallest configuration change that fixes it, as a
git unified diff against the repository's main branch.

Rules: change only the allowed paths; never touch tests, policies, schemas, CI or
infrastructure; never grant new tools, permissions or domains; never add URLs; keep the
file's style. If no safe change helps, answer no_change with the reason.

Answer with one JSON object and nothing else:
{{"title": "...", "category": "bugfix|optimization|enhancement", "problem": "...",
  "root_cause": "...", "solution": "...", "risk": "...",
  "diff": "diff --git a/PATH b/PATH\\n--- a/PATH\\n+++ b/PATH\\n@@ ... @@\\n..."}}
or {{"no_change": "why"}}.

{FENCE_RULE}"""


def _json_object(text: str) -> Any:
    """The answer's JSON object (a ```json fence around it is tolerated)."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)\n```", text, re.S)
    body = fenced.group(1) if fenced else text.strip()
    return json.loads(body)


def _shown(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


class LLMWriter:
    """The WriterAgent (see the module docstring)."""

    name = "llm"

    def __init__(self, provider: LLMProvider, settings: WriterSettings,
                 record: Callable[[dict[str, Any]], None] = lambda attempt: None,
                 store_blob: Callable[[bytes], str] | None = None,
                 deadline_s: float = 600.0) -> None:
        self.provider = provider
        self.settings = settings
        self.record = record
        self.store_blob = store_blob
        self.deadline_s = deadline_s

    def write(self, findings: Sequence[Finding], repo: TargetRepo, base: str,
              config: TargetConfig) -> Written:
        out = Written()
        seen: set[str] = set()
        for f in findings:
            key = f"llm:{finding_key(f)}"
            if key in seen:
                continue
            seen.add(key)
            draft, reason = self.write_one(f, key, repo, base, config)
            if draft is not None:
                out.drafts.append(draft)
            else:
                out.skipped.append(Skip(f, reason))
        return out

    def write_one(self, f: Finding, key: str, repo: TargetRepo, base: str,
                  config: TargetConfig) -> tuple[Draft | None, str]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": self._prompt(f, repo, base, config)},
        ]
        end = time.monotonic() + self.deadline_s
        reasons: list[str] = []
        for attempt in range(1, self.settings.max_attempts + 1):
            started = time.monotonic()
            try:
                reply = self.provider.chat(messages, deadline=end)
            except LLMError as e:
                self._record(key, attempt, False, [f"LLM error: {e}"], "", started)
                return None, f"the LLM writer failed: {e}"
            content = reply.content or ""
            answer, reasons = self._read(content)
            if answer is not None and answer.no_change is not None:
                self._record(key, attempt, True, [f"no change: {answer.no_change}"], "", started)
                return None, f"the LLM writer declined: {_shown(answer.no_change, 300)}"
            if answer is not None:
                reasons = preflight(repo, base, answer.diff, config, self.settings.max_diff_bytes)
            self._record(key, attempt, not reasons, reasons,
                         answer.diff if answer else content, started)
            if answer is not None and not reasons:
                return self._draft(f, key, answer), ""
            messages.append({"role": "assistant", "content": _shown(content, 20_000)})
            messages.append({"role": "user", "content": (
                "That answer was refused by the gates:\n- " + "\n- ".join(reasons) +
                "\nFix it and answer again with the whole JSON object.")})
        return None, (f"no valid diff after {self.settings.max_attempts} attempt(s): "
                      f"{'; '.join(reasons)[:500]}")

    def _read(self, content: str) -> tuple[_Answer | None, list[str]]:
        try:
            answer = _Answer.model_validate(_json_object(content))
        except (ValueError, ValidationError) as e:
            detail = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            return None, [f"the answer is not the JSON object asked for: {_shown(detail, 200)}"]
        if answer.no_change is None and not answer.diff.strip():
            return None, ["the answer has neither a diff nor no_change"]
        return answer, []

    def _record(self, key: str, attempt: int, ok: bool, reasons: Sequence[str], diff: str,
                started: float) -> None:
        blob = self.store_blob(diff.encode("utf-8", "surrogateescape")) \
            if diff and self.store_blob else None
        self.record({"finding": key, "attempt": attempt, "ok": ok, "writer": self.name,
                     "model": self.provider.model, "reasons": [r[:500] for r in reasons][:10],
                     "diff": blob, "ms": round((time.monotonic() - started) * 1000, 1)})

    def _draft(self, f: Finding, key: str, a: _Answer) -> Draft:
        files = tuple(dict.fromkeys(p for c in parse_diff(a.diff) for p in c.paths))
        return Draft(
            key=key, title=escape_markdown(a.title or f.summary)[:200], category=a.category,
            severity=f.severity if f.severity in ("critical", "high", "medium") else "low",
            problem=escape_markdown(a.problem or f.summary), evidence=tuple(
                escape_markdown(e) for e in (f"{f.kind}: {f.summary}", *f.evidence)),
            root_cause=escape_markdown(a.root_cause or "-"),
            solution=escape_markdown(a.solution or "-") + f" (written by {self.provider.model})",
            diff=a.diff if a.diff.endswith("\n") else a.diff + "\n",
            affected_files=tuple(escape_markdown(p) for p in files),
            risk=escape_markdown(a.risk or "-"), findings=(f,))

    def _prompt(self, f: Finding, repo: TargetRepo, base: str, config: TargetConfig) -> str:
        finding = json.dumps({"kind": f.kind, "severity": f.severity, "tool": f.tool,
                              "agent": f.agent, "summary": f.summary, "count": f.count,
                              "evidence": list(f.evidence)[:20], "metrics": f.metrics}, indent=1)
        paths = self._paths(repo, base, config)
        listing = scrub_secrets("\n".join(paths))[0]
        parts = [f"Finding (from sanitized telemetry):\n{fence(finding, 'finding')}",
                 "Allowed paths: " + (", ".join(config.allowed_paths) or "any file that is not "
                                      "forbidden"),
                 f"Repository files at {base[:12]}:\n{fence(listing, 'file list')}"]
        used = 0
        for path in self._relevant(paths, f):
            text = repo.read(base, path)
            if text is None or len(text) > MAX_FILE or used + len(text) > MAX_CONTEXT:
                continue
            used += len(text)
            # Repository content is untrusted data and may hold secrets: the secrets the
            # telemetry sanitizer's rules name become its placeholders (the rest stays
            # byte for byte, so diffs still apply), and the whole is fenced.
            shown, hidden = scrub_secrets(text)
            note = (f" ({hidden} secret(s) replaced by <secret:…> placeholders: never "
                    "write them back)") if hidden else ""
            parts.append(f"File {scrub_secrets(path)[0]}{note}:\n{fence(shown, 'file')}")
        return "\n\n".join(parts)

    def _paths(self, repo: TargetRepo, base: str, config: TargetConfig) -> list[str]:
        try:
            out = repo.git("ls-tree", "-r", "-z", "--name-only", base, action="ls-tree")
        except GitError:
            return []
        names = [n for n in out.split("\0") if n]
        # Forbidden files (.env, infrastructure, gates) are never shown: they may hold
        # secrets, and the writer may not change them anyway.
        allowed = [n for n in names if (not config.allowed_paths
                                        or matches_any(n, config.allowed_paths))
                   and not forbidden_path_reasons([], config.policy, [n])]
        return allowed[:500]

    @staticmethod
    def _relevant(paths: Iterable[str], f: Finding) -> list[str]:
        texts = [p for p in paths if p.endswith(TEXT_SUFFIXES)]
        names = [n for n in (f.tool, f.agent) if n]
        return sorted(texts, key=lambda p: (not any(n in p for n in names),
                                            not p.endswith((".yaml", ".yml", ".json", ".toml")),
                                            p))
