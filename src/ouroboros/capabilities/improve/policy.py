"""Policy tests: the audit gate of a proposal (the seed's ``policy_test.py``, made real).

They compare the proposal branch with its base commit and answer with reasons, never
booleans: forbidden paths (infrastructure, the contract, and the gates, tests,
detectors and ledger code themselves), privilege escalation (a new extension, tool,
allowed path or domain granted anywhere in the configuration), new external URLs
outside the allow-list, and schedule changes. Pure functions over texts, so the same
rules run on a branch, on a bare diff, or in a property test.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ouroboros.capabilities.improve.diffs import FileChange
from ouroboros.capabilities.improve.yamledit import load_yaml

CONTRACT = "SYSTEM_CONTRACT.md"

#: The seed's forbidden paths, adapted to the example deployment.
INFRASTRUCTURE_PATHS: tuple[str, ...] = (
    "docker-compose.yml",
    "docker-compose.yaml",
    ".env",
    ".env.*",
    "tools-gateway/*",
    "rag-ingestion/ingest.py",
    "agents/provision.py",
    "agents/generate_api_key.py",
    ".git/*",
    ".github/*",
    ".gitlab-ci.yml",
)

#: Gates, tests, detectors and ledger code: a proposal may never weaken its own checks.
GATE_PATHS: tuple[str, ...] = (
    "tests/*",
    "*/tests/*",
    "test_*.py",
    "*/test_*.py",
    "*_test.py",
    "conftest.py",
    "*/conftest.py",
    "policy/*",
    "*policy*.py",
    "*.rego",
    ".yamllint",
    ".yamllint.*",
    ".shellcheckrc",
    "schemas/*",
    "*.schema.json",
    ".ouro/*",
    "*ledger*",
    "src/ouroboros/kernel/*",
    "src/ouroboros/storage/*",
    "src/ouroboros/capabilities/improve/*",
    "telemetry/*.py",
    "*sanitizer*",
    "*secret_rules*",
    "detectors/*",
    "*/detectors/*",
    "*detector*.py",
)

DEFAULT_ALLOWED_DOMAINS: tuple[str, ...] = ("api.openai.com", "api.anthropic.com", "github.com")

#: Keys whose list items (or mapping keys) are capabilities granted to someone.
GRANT_KEYS: frozenset[str] = frozenset(
    {"extensions", "tools", "allowed_paths", "allowed_domains", "allowlist", "webhooks",
     "permissions", "scopes", "endpoints"}
)

_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://(?:[^/\s"'@]*@)?([^/\s"'<>:?#)\]]+)""", re.I)


@dataclass(frozen=True)
class PolicyConfig:
    infrastructure: tuple[str, ...] = INFRASTRUCTURE_PATHS
    gates: tuple[str, ...] = GATE_PATHS
    allowed_domains: tuple[str, ...] = DEFAULT_ALLOWED_DOMAINS
    schedule_files: tuple[str, ...] = ("scheduled_tasks.yaml", "scheduled_tasks.yml")
    extra_forbidden: tuple[str, ...] = field(default_factory=tuple)


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(path == p or fnmatch.fnmatchcase(path, p) for p in patterns)


def forbidden_path_reasons(changes: Sequence[FileChange], config: PolicyConfig) -> list[str]:
    reasons = []
    for change in changes:
        for path in change.paths:
            if path == CONTRACT or path.endswith("/" + CONTRACT):
                reasons.append(f"{CONTRACT} must never be modified ({path})")
            elif _matches(path, config.gates):
                reasons.append(f"gate, test or ledger code is a forbidden target: {path}")
            elif _matches(path, (*config.infrastructure, *config.extra_forbidden)):
                reasons.append(f"forbidden path modified: {path}")
        if change.new_mode == "120000":
            reasons.append(f"symbolic links are not allowed: {change.path}")
    return reasons


def _domain_allowed(domain: str, allowed: Iterable[str]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == a or domain.endswith("." + a) for a in allowed)


def url_domains(text: str) -> set[str]:
    return {m.group(1).lower().rstrip(".") for m in _URL.finditer(text)}


def new_url_reasons(
    changes: Sequence[FileChange], old_text: Callable[[str], str | None], config: PolicyConfig
) -> list[str]:
    """Domains on added lines that are neither allow-listed nor already in the file."""
    reasons = []
    for change in changes:
        before = url_domains(old_text(change.source) or "") if change.source else set()
        for domain in sorted(url_domains("\n".join(change.added))):
            if domain not in before and not _domain_allowed(domain, config.allowed_domains):
                reasons.append(f"new external URL requires approval: {domain} in {change.path}")
    return reasons


def _load(path: str, text: str | None) -> Any:
    if text is None:
        return None
    if path.endswith(".json"):
        return json.loads(text)
    return load_yaml(text)


def grants(doc: Any, prefix: tuple[str, ...] = ()) -> set[tuple[tuple[str, ...], str]]:
    """Every (where, what) capability grant in a parsed config document."""
    found: set[tuple[tuple[str, ...], str]] = set()
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            where = (*prefix, str(key))
            if str(key).lower() in GRANT_KEYS:
                if isinstance(value, Mapping):
                    found |= {(where, str(k)) for k in value}
                elif isinstance(value, list):
                    found |= {(where, json.dumps(v, sort_keys=True) if not isinstance(v, str)
                               else v) for v in value}
                elif value not in (None, False, "", [], {}):
                    found.add((where, str(value)))
            found |= grants(value, where)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            found |= grants(item, (*prefix, str(i)))
    return found


def _describe_grant(path: str, where: tuple[str, ...], what: str) -> str:
    if len(where) >= 3 and where[0] == "agents":
        return f"agent {where[1]} granted new {where[-1]}: {what} ({path})"
    return f"new {where[-1]} granted: {what} at {'.'.join(where)} ({path})"


def escalation_reasons(
    changes: Sequence[FileChange],
    old_text: Callable[[str], str | None],
    new_text: Callable[[str], str | None],
    config: PolicyConfig,
) -> list[str]:
    """Grants and schedules in changed YAML/JSON files that the base did not have."""
    reasons: list[str] = []
    for change in changes:
        path = change.target
        if path is None or not path.endswith((".yaml", ".yml", ".json")):
            continue
        try:
            old = _load(path, old_text(change.source)) if change.source else None
            new = _load(path, new_text(path))
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            reasons.append(f"cannot check privileges: {path} does not parse ({type(e).__name__})")
            continue
        for where, what in sorted(grants(new) - grants(old)):
            reasons.append(_describe_grant(path, where, what))
        if _matches(path, config.schedule_files):
            reasons.extend(_schedule_reasons(path, old, new))
    return reasons


def _tasks(doc: Any) -> dict[str, Any]:
    tasks = doc.get("tasks") if isinstance(doc, Mapping) else None
    return dict(tasks) if isinstance(tasks, Mapping) else {}


def _schedule_reasons(path: str, old: Any, new: Any) -> list[str]:
    before, after = _tasks(old), _tasks(new)
    reasons = []
    for name, task in after.items():
        if name not in before:
            reasons.append(f"new scheduled task requires manual review: {name} ({path})")
            continue
        for key in ("schedule", "agent", "script"):
            old_v = before[name].get(key) if isinstance(before[name], Mapping) else None
            new_v = task.get(key) if isinstance(task, Mapping) else None
            if old_v != new_v:
                reasons.append(f"task {name}: {key} changed ({old_v!r} -> {new_v!r}) ({path})")
    return reasons


def check_policy(
    changes: Sequence[FileChange],
    old_text: Callable[[str], str | None],
    new_text: Callable[[str], str | None],
    config: PolicyConfig | None = None,
) -> list[str]:
    """All policy violations of a change set; empty means the audit passes.

    Args:
        changes: the files the proposal touches (from the branch's real diff).
        old_text: a file's text at the base commit (None if absent).
        new_text: a file's text on the proposal branch (None if absent).
    """
    config = config or PolicyConfig()
    return [
        *forbidden_path_reasons(changes, config),
        *escalation_reasons(changes, old_text, new_text, config),
        *new_url_reasons(changes, old_text, config),
    ]
