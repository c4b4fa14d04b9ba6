"""The target repository's own configuration: its schemas and policy, read at the
pinned base commit.

A connected repository says how its files are validated (``[improve.schemas]``: path
glob -> JSON Schema file in the repository) and what a proposal may touch
(``[improve.policy]``), in its ``ouro.toml`` or its ``pyproject.toml``'s
``[tool.ouroboros]``. Both are read from the base commit, never from a proposal branch,
and the files that hold them become forbidden paths: a proposal cannot loosen the checks
that judge it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ouroboros.capabilities.improve.proposals.policy import PolicyConfig
from ouroboros.kernel.settings import (
    FILE_NAME,
    ImproveSettings,
    PolicySettings,
    Problem,
    SettingsError,
    parse_toml,
    validate,
)

Read = Callable[[str], str | None]


@dataclass(frozen=True)
class TargetConfig:
    policy: PolicyConfig
    allowed_paths: tuple[str, ...]
    schemas: dict[str, dict[str, Any]] | None  # None: the shipped schemas of the example
    source: str

    def describe(self) -> str:
        count = "shipped schemas" if self.schemas is None else f"{len(self.schemas)} schema(s)"
        return f"{self.source}: {count}, {len(self.policy.extra_forbidden)} extra forbidden path(s)"


def repo_settings(read: Read, at: str) -> tuple[ImproveSettings | None, tuple[str, ...]]:
    """The repository's ``[improve]`` settings at a commit, and the files they came from."""
    text = read(FILE_NAME)
    if text is not None:
        source = parse_toml(text, f"{FILE_NAME}@{at[:12]}")
        return (validate([source]).settings.improve if source else None), (FILE_NAME,)
    text = read("pyproject.toml")
    if text is not None:
        source = parse_toml(text, f"pyproject.toml@{at[:12]}", ("tool", "ouroboros"))
        if source is not None:
            return validate([source]).settings.improve, ("pyproject.toml",)
    return None, ()


def load_target_config(read: Read, at: str, workspace: ImproveSettings) -> TargetConfig:
    """The checks for proposals on a repository at commit ``at``: the workspace's settings
    tightened by the repository's own.

    Raises:
        SettingsError: the repository's config or one of its schemas is unreadable.
    """
    repo, files = repo_settings(read, at)
    policies: list[PolicySettings] = [workspace.policy, *([repo.policy] if repo else [])]
    schema_map = (repo.schemas if repo and repo.schemas else workspace.schemas) or None
    schemas: dict[str, dict[str, Any]] | None = None
    if schema_map is not None:
        schemas = {glob: _schema(read, path, at) for glob, path in schema_map.items()}
    guarded = (*files, *(schema_map or {}).values())
    policy = PolicyConfig(
        allowed_domains=tuple(dict.fromkeys(
            (*PolicyConfig().allowed_domains, *(d for p in policies for d in p.allowed_domains)))),
        extra_forbidden=tuple(dict.fromkeys(
            (*(f for p in policies for f in p.forbidden_paths), *guarded))),
    )
    if repo and repo.policy.schedule_files != PolicySettings().schedule_files:
        policy = replace(policy, schedule_files=repo.policy.schedule_files)
    allowed = (repo.policy.allowed_paths if repo and repo.policy.allowed_paths
               else workspace.policy.allowed_paths)
    source = f"{files[0]}@{at[:12]}" if files else "workspace settings"
    return TargetConfig(policy, tuple(allowed), schemas, source)


def _schema(read: Read, path: str, at: str) -> dict[str, Any]:
    text = read(path)
    where = f"{path}@{at[:12]}"
    if text is None:
        raise SettingsError([Problem("improve.schemas", f"schema file {path} is not in the "
                                     f"repository at {at[:12]}", where)])
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError([Problem("improve.schemas", f"not JSON: {e}", where, e.lineno)]) \
            from None
    except RecursionError:
        raise SettingsError([Problem("improve.schemas", "not JSON: nested too deeply",
                                     where)]) from None
    if not isinstance(loaded, Mapping):
        raise SettingsError([Problem("improve.schemas", "a schema must be a JSON object", where)])
    return dict(loaded)
