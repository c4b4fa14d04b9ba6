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
import posixpath
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ouroboros.capabilities.improve.proposals.diffs import FileChange
from ouroboros.capabilities.improve.proposals.yamledit import load_yaml
from ouroboros.kernel.scan import is_grant_key
from ouroboros.kernel.urls import UrlRef, host_allowed, urls_in_text

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
    # how git checks files out and merges them (encodings, line ends, drivers, export
    # rules) and what it clones alongside: main's working tree must be the validated blobs
    ".gitattributes",
    "*/.gitattributes",
    ".gitmodules",
    ".github/*",
    ".gitlab-ci.yml",
    # other CI systems: a proposal's branch is pushed before approval, and a pushed branch
    # runs its CI configuration with the CI's secrets
    ".gitlab/*",
    ".circleci/*",
    "Jenkinsfile",
    ".travis.yml",
    "azure-pipelines.yml",
    ".azure-pipelines/*",
    ".buildkite/*",
    "bitbucket-pipelines.yml",
    ".drone.yml",
    ".woodpecker.yml",
    ".woodpecker/*",
    ".pre-commit-config.yaml",
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

#: Git modes a proposal may never create: symbolic links and submodules (gitlinks).
FORBIDDEN_MODES: dict[str, str] = {"120000": "symbolic links", "160000": "submodules"}


@dataclass(frozen=True)
class PolicyConfig:
    infrastructure: tuple[str, ...] = INFRASTRUCTURE_PATHS
    gates: tuple[str, ...] = GATE_PATHS
    allowed_domains: tuple[str, ...] = DEFAULT_ALLOWED_DOMAINS
    schedule_files: tuple[str, ...] = ("scheduled_tasks.yaml", "scheduled_tasks.yml")
    extra_forbidden: tuple[str, ...] = field(default_factory=tuple)


def path_forms(path: str) -> set[str]:
    """The forms a path is matched in: as written, NFC, normalised (``./``, ``//``,
    ``..``), each also case-folded — so neither quoting, decomposed accents, case nor
    dot segments hide a forbidden path."""
    nfc = unicodedata.normalize("NFC", path)
    forms = {path, nfc, posixpath.normpath(nfc).lstrip("/")}
    return forms | {f.casefold() for f in forms}


def _matches(path: str, patterns: Iterable[str]) -> bool:
    forms = path_forms(path)
    for pattern in patterns:
        pat = unicodedata.normalize("NFC", pattern)
        for form in forms:
            if form == pat or fnmatch.fnmatchcase(form, pat) or \
                    fnmatch.fnmatchcase(form, pat.casefold()):
                return True
    return False


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    """Whether any form of ``path`` (see :func:`path_forms`) matches one of the globs."""
    return _matches(path, patterns)


def _is_contract(path: str) -> bool:
    return any(f == CONTRACT.casefold() or f.endswith("/" + CONTRACT.casefold())
               for f in path_forms(path) if f == f.casefold())


def forbidden_path_reasons(changes: Sequence[FileChange], config: PolicyConfig,
                           extra_paths: Iterable[str] = (),
                           modes: Mapping[str, str] | None = None) -> list[str]:
    """Forbidden paths among everything the change touches: both sides of a rename or
    copy, deleted files, mode-only and binary changes (``changes``), plus ``extra_paths``
    (e.g. every path the submitted diff's headers name) and ``modes`` (path → new git
    mode, e.g. from ``git diff --raw``)."""
    reasons: list[str] = []
    paths = list(dict.fromkeys([*(p for c in changes for p in c.paths), *extra_paths]))
    for path in paths:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if _is_contract(path):
            reasons.append(f"{CONTRACT} must never be modified ({shown})")
        elif _matches(path, config.gates):
            reasons.append(f"gate, test or ledger code is a forbidden target: {shown}")
        elif _matches(path, (*config.infrastructure, *config.extra_forbidden)):
            reasons.append(f"forbidden path modified: {shown}")
    new_modes = {c.path: c.new_mode for c in changes if c.new_mode}
    new_modes.update(modes or {})
    for path, mode in new_modes.items():
        if mode in FORBIDDEN_MODES:
            reasons.append(f"{FORBIDDEN_MODES[mode]} are not allowed: {path}")
    return list(dict.fromkeys(reasons))


def _domain_allowed(domain: str, allowed: Iterable[str]) -> bool:
    return host_allowed(UrlRef("", "https", domain.lower().rstrip("."), "domain"), tuple(allowed))


def url_domains(text: str) -> set[str]:
    """Hosts of the URLs in ``text``, resolved as a browser would (see kernel.urls)."""
    return {u.host for u in urls_in_text(text) if u.host}


def _url_label(ref: UrlRef) -> str:
    if ref.error:
        return f"{ref.url} (malformed: {ref.error})"
    return ref.host or f"{ref.url} (no host)"


def new_url_reasons(
    changes: Sequence[FileChange], old_text: Callable[[str], str | None], config: PolicyConfig
) -> list[str]:
    """URLs on added lines whose host is neither allow-listed nor already in the file;
    host-less (``data:``, ``javascript:``) and malformed URLs are never allowed."""
    reasons = []
    for change in changes:
        before = url_domains(old_text(change.source) or "") if change.source else set()
        labels: set[str] = set()
        for ref in urls_in_text("\n".join(change.added)):
            if ref.host and not ref.error and (
                    ref.host in before or host_allowed(ref, config.allowed_domains)):
                continue
            labels.add(_url_label(ref))
        for label in sorted(labels):
            reasons.append(f"new external URL requires approval: {label} in {change.path}")
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
            if is_grant_key(str(key)):
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
    *,
    paths_checked: bool = False,
) -> list[str]:
    """All policy violations of a change set; empty means the audit passes.

    Args:
        changes: the files the proposal touches (from the branch's real diff).
        old_text: a file's text at the base commit (None if absent).
        new_text: a file's text on the proposal branch (None if absent).
        paths_checked: the caller already ran :func:`forbidden_path_reasons` (with
            more paths than ``changes`` name).
    """
    config = config or PolicyConfig()
    return [
        *([] if paths_checked else forbidden_path_reasons(changes, config)),
        *escalation_reasons(changes, old_text, new_text, config),
        *new_url_reasons(changes, old_text, config),
    ]
