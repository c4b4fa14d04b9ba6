"""Workspace settings: ``ouro.toml`` / ``[tool.ouroboros]``, validated by one typed model.

The kernel holds the model so that every layer above it (capabilities, the CLI, the HTTP
service) imports it without importing upward; the kernel passes plain values down to
storage.

    loaded = load_settings(home)               # or load_settings(home, flags={...})
    loaded.settings.improve.target.branch      # typed, validated, frozen
    loaded.origin(("improve", "target", "branch"))   # "ouro.toml:4", "env …", "--branch"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit

from ouroboros.kernel.settings.model import (
    ChatSettings,
    DeploySettings,
    ForgeSettings,
    ImproveSettings,
    LLMSettings,
    MonitorSettings,
    NotifySettings,
    PolicySettings,
    ScanSettings,
    Schedules,
    Settings,
    TargetSettings,
    TelemetrySettings,
    WriterSettings,
    check_schedule,
    crontab_of,
    interval_seconds,
)
from ouroboros.kernel.settings.sources import (
    FILE_NAME,
    LoadedSettings,
    Problem,
    SettingsError,
    Source,
    env_source,
    file_sources,
    flag_source,
    parse_toml,
    read_settings_file,
    read_toml,
    validate,
)
from ouroboros.storage.files import flocked, replace_file

__all__ = [
    "FILE_NAME",
    "ChatSettings",
    "DeploySettings",
    "ForgeSettings",
    "ImproveSettings",
    "LLMSettings",
    "LoadedSettings",
    "MonitorSettings",
    "NotifySettings",
    "PolicySettings",
    "Problem",
    "ScanSettings",
    "Schedules",
    "Settings",
    "SettingsError",
    "Source",
    "TargetSettings",
    "TelemetrySettings",
    "WriterSettings",
    "check_schedule",
    "crontab_of",
    "interval_seconds",
    "load_settings",
    "parse_toml",
    "read_toml",
    "validate",
    "write_setting",
    "write_settings",
]


def load_settings(home: Path | None = None, *, cwd: Path | None = None,
                  env: Mapping[str, str] | None = None,
                  flags: Mapping[str, tuple[str, Any]] | None = None) -> LoadedSettings:
    """The effective settings for a workspace (see :mod:`.sources` for the order).

    Raises:
        SettingsError: a file is not TOML or a value does not validate (file, line, key).
    """
    sources = file_sources(home, cwd)
    sources.append(env_source(os.environ if env is None else env))
    sources.append(flag_source(flags or {}))
    return validate(sources)


def write_setting(path: Path, key: tuple[str, ...], value: Any) -> None:
    """Set ``key`` in the TOML file at ``path`` (see `write_settings`)."""
    write_settings(path, {key: value})


def write_settings(path: Path, values: Mapping[tuple[str, ...], Any]) -> None:
    """Set every key of ``values`` in the TOML file at ``path`` keeping its comments and
    layout, after checking the whole file still validates (nothing is written otherwise).

    All keys land in one replacement (a kill leaves all of them old or all new), under the
    file's lock (two writers never lose each other's keys), written, fsynced, renamed over
    and the folder fsynced (a power loss leaves the old file or the new one)."""
    with flocked(path.with_name(path.name + ".lock"), mode=0o644):
        text = read_settings_file(path)
        try:
            doc = tomlkit.document() if text is None else tomlkit.parse(text)
        except Exception as e:  # tomlkit raises its own ParseError family
            raise SettingsError([Problem("", f"not valid TOML: {e}", str(path))]) from e
        for key, value in values.items():
            table: Any = doc
            for part in key[:-1]:
                if part not in table:
                    table[part] = tomlkit.table()
                table = table[part]
            table[key[-1]] = value
        text = tomlkit.dumps(doc)
        check = parse_toml(text, str(path))
        validate([check] if check else [])
        replace_file(path, text, durable=True)
