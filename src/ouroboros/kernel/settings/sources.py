"""Where settings come from, in order (each overrides the one before):

1. defaults (the model);
2. ``[tool.ouroboros]`` in ``./pyproject.toml``;
3. ``./ouro.toml``;
4. ``<home>/ouro.toml`` (the workspace's; ``ouro improve connect`` writes here);
5. a few documented environment variables (``OURO_WEBHOOK_URL``, ``OURO_LLM_BASE_URL``,
   ``OURO_LLM_MODEL``);
6. command-line flags.

Every value keeps its origin (``file:line``, ``env NAME``, ``--flag``), so ``ouro config
show`` can say where a value came from and a validation error names the file, the line
and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.settings.model import Settings
from ouroboros.storage.files import UnsafeFile, read_text_file

FILE_NAME = "ouro.toml"
PYPROJECT_TABLE = ("tool", "ouroboros")

#: Environment variables that override a setting (documented; the loop honoured them before
#: there was a settings file).
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "OURO_WEBHOOK_URL": ("notify", "webhook_url"),
    "OURO_LLM_BASE_URL": ("llm", "base_url"),
    "OURO_LLM_MODEL": ("llm", "model"),
}

Key = tuple[str, ...]
SECRET_NAMES = frozenset({"api_key", "token", "secret", "password", "signing_secret"})


@dataclass(frozen=True)
class Problem:
    """One bad setting: where it is and what is wrong."""

    key: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else \
            f"{self.file}: " if self.file else ""
        return f"{where}{self.key or '(file)'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "message": self.message, "file": self.file, "line": self.line}


class SettingsError(UsageError):
    """The settings do not validate; ``problems`` says where, key by key."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"bad configuration: {first}{more}",
                         "fix the file and run `ouro config check`")
        self.problems = problems


@dataclass(frozen=True)
class Source:
    """One layer of settings: a TOML file's table, the environment, or the flags."""

    name: str  # a file path, "env" or "flags"
    data: dict[str, Any]
    lines: dict[Key, int] = field(default_factory=dict)
    labels: dict[Key, str] = field(default_factory=dict)  # env var or flag per key

    def origin(self, key: Key) -> str | None:
        """Where ``key`` (or its nearest enclosing table) was set in this layer."""
        for n in range(len(key), 0, -1):
            prefix = key[:n]
            if prefix in self.labels:
                return self.labels[prefix]
            if prefix in self.lines:
                return f"{self.name}:{self.lines[prefix]}"
        return None

    def has(self, key: Key) -> bool:
        node: Any = self.data
        for part in key:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: tuple[Source, ...]

    def origin(self, key: Key) -> str:
        for source in reversed(self.sources):
            if source.has(key):
                return source.origin(key) or source.name
        return "default"

    @property
    def files(self) -> list[str]:
        return [s.name for s in self.sources if s.name not in ("env", "flags")]


# -- reading files --------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:\"[^\"]*\"|'[^']*'|"
                     r"[A-Za-z0-9_-]+))*)\s*=")
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")


def _parts(dotted: str) -> Key:
    return tuple(next(g for g in m.groups() if g is not None) for m in _PART.finditer(dotted))


def key_lines(text: str) -> dict[Key, int]:
    """The line of every table header and key assignment of a TOML text (1-based).

    tomllib gives values, not positions; this small scanner only needs to find where a
    key is written, so it reads headers and ``key =`` lines and skips multi-line strings.
    """
    lines: dict[Key, int] = {}
    table: Key = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            lines.setdefault(table + _parts(assign.group(1)), number)
            rest = line[assign.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def read_toml(path: Path, table: Key = ()) -> Source | None:
    """The ``table`` of the TOML file at ``path`` as a source, or None when absent."""
    text = read_settings_file(path)
    return None if text is None else parse_toml(text, str(path), table)


#: The most of a settings file read: hand-written files of a few KiB; a pyproject.toml
#: of a large project is still far below this.
MAX_SETTINGS_FILE = 16 << 20


def read_settings_file(path: Path) -> str | None:
    """A settings file's text, None when absent; a FIFO or device (never waited on, also
    behind a link), a file over `MAX_SETTINGS_FILE` or bytes that are not UTF-8 are a
    `SettingsError` naming it. A link to a regular file is read through: settings files
    are the user's own (a pyproject.toml or an ouro.toml kept in a dotfiles folder), and
    `write_settings` renames over a link rather than writing through it."""
    try:
        return read_text_file(path, MAX_SETTINGS_FILE, follow_links=True)
    except OSError as e:  # the Problem names the path; UnsafeFile's message did too
        why = str(e).removeprefix(f"{path} ") if isinstance(e, UnsafeFile) \
            else f"cannot read: {e.strerror or e}"
        raise SettingsError([Problem("", why, str(path))]) from None


def parse_toml(text: str, name: str, table: Key = ()) -> Source | None:
    """The ``table`` of a TOML text as a source named ``name`` (None: no such table)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"line (\d+)", str(e))
        raise SettingsError([Problem("", f"not valid TOML: {e}", name,
                                     int(found.group(1)) if found else None)]) from e
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise SettingsError([Problem("", "not valid TOML: nested too deeply", name)]) from None
    for part in table:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    if table and not data:
        return None
    if not isinstance(data, dict):
        raise SettingsError([Problem(".".join(table), "must be a table", name)])
    lines = {k[len(table):]: n for k, n in key_lines(text).items() if k[:len(table)] == table}
    return Source(name, data, lines)


def file_sources(home: Path | None, cwd: Path | None = None) -> list[Source]:
    """The file layers, lowest first (see the module docstring)."""
    cwd = cwd or Path.cwd()
    found = [read_toml(cwd / "pyproject.toml", PYPROJECT_TABLE), read_toml(cwd / FILE_NAME)]
    if home is not None and Path(home).resolve() != cwd.resolve():
        found.append(read_toml(Path(home) / FILE_NAME))
    return [s for s in found if s is not None]


def env_source(env: Mapping[str, str]) -> Source:
    data: dict[str, Any] = {}
    labels: dict[Key, str] = {}
    for name, key in ENV_KEYS.items():
        if env.get(name):
            _put(data, key, env[name])
            labels[key] = f"env {name}"
    return Source("env", data, labels=labels)


def flag_source(flags: Mapping[str, tuple[str, Any]]) -> Source:
    """``{"improve.target.branch": ("--branch", "dev")}``: flags given on the command line
    (None values are flags not given)."""
    data: dict[str, Any] = {}
    labels: dict[Key, str] = {}
    for dotted, (flag, value) in flags.items():
        if value is not None:
            key = tuple(dotted.split("."))
            _put(data, key, value)
            labels[key] = flag
    return Source("flags", data, labels=labels)


def _put(data: dict[str, Any], key: Key, value: Any) -> None:
    for part in key[:-1]:
        data = data.setdefault(part, {})
    data[key[-1]] = value


def merge(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Tables merge key by key; any other value from a later layer replaces the earlier."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge_into(out, layer)
    return out


def _merge_into(out: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            _merge_into(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = {}
            _merge_into(out[key], value)
        else:
            out[key] = value


def validate(sources: list[Source]) -> LoadedSettings:
    """One :class:`Settings` from the layers, or a SettingsError naming file, line, key."""
    try:
        settings = Settings.model_validate(merge(s.data for s in sources))
    except ValidationError as e:
        problems = []
        for error in e.errors():
            key = tuple(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting (misspelt? see `ouro config show`)"
                if key[-1] in SECRET_NAMES:
                    message = ("secrets never go in a settings file: put it in an environment "
                               "variable and name the variable (e.g. api_key_env, token_env)")
            owner = next((s for s in reversed(sources) if s.has(key) or s.has(key[:-1])), None)
            where = owner.origin(key) if owner else None
            file, line = where, None
            if where and ":" in where and where.rsplit(":", 1)[1].isdigit():
                file, line = where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1])
            problems.append(Problem(".".join(key), message, file, line))
        raise SettingsError(problems) from None
    return LoadedSettings(settings, tuple(sources))
