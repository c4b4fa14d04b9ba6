"""The typed settings of a workspace: one pydantic model, validated on the way in.

Every section is a frozen model with ``extra="forbid"``, so a misspelt key is an error
that names it rather than a setting silently ignored. Secrets never live here: a
section names the *environment variable* that holds a token (``token_env``,
``api_key_env``, ``signing_secret_env``), never the token.

Extending: a new section (``[ledger]``, ``[serve]``) is a new ``_Section`` subclass
with validated fields and a default, added as one field of :class:`Settings`; its
validation errors then come out with file, line and key like every other (see
``docs/configuration.md``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/-]{1,100}\Z")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
_EVERY = re.compile(r"^(?:every\s+)?([0-9]{1,6})\s*([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 9 * * *", "@weekly": "0 6 * * mon",
            "@monthly": "0 6 1 * *"}

EnvName = Annotated[str, Field(pattern=_ENV_NAME.pattern)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str | None, what: str) -> str | None:
    """``value`` if it is an absolute http(s) URL with a host, else ValueError."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL with a host, not {value!r}")
    return value.rstrip("/")


def interval_seconds(schedule: str) -> int | None:
    """Seconds of an ``every N[smhd]`` (or bare ``N[smhd]``) schedule, or None for a cron
    expression."""
    match = _EVERY.match(schedule.strip())
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_of(schedule: str) -> str:
    """A schedule's five-field crontab (aliases such as ``@weekly`` expanded), with numeric
    days of the week as names: cron counts 0 = Sunday, APScheduler 3 counts 0 = Monday, so
    names keep ``1-5`` meaning Monday to Friday."""
    text = _ALIASES.get(schedule.strip(), schedule.strip())
    fields = text.split()
    if len(fields) == 5:
        fields[4] = re.sub(r"\d+", lambda m: _DAYS[int(m.group()) % 7], fields[4])
    return " ".join(fields)


def check_schedule(schedule: str) -> str:
    """``off``, ``every N[smhd]`` (or ``N[smhd]``), ``@hourly|@daily|@weekly|@monthly`` or
    five cron fields; returns it stripped, ``off`` in any case as ``off``."""
    text = schedule.strip()
    if text.lower() == "off":
        return "off"
        return text
    seconds = interval_seconds(text)
    if seconds is not None:
        if seconds < 1:
            raise ValueError("an interval must be at least 1 s")
        return text
    crontab = crontab_of(text)
    if len(crontab.split()) != 5:
        raise ValueError(f"{schedule!r} is not a schedule: use 'every 15m' (or '15m'), "
                         "'@daily', 'off' or five cron fields such as '0 9 * * 1-5'")
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(crontab, timezone="UTC")
    except ValueError as e:
        raise ValueError(f"{schedule!r} is not a valid cron expression: {e}") from None
    return text


class TargetSettings(_Section):
    """The repository the loop improves (``ouro improve connect`` writes it)."""

    repo: str | None = Field(None, description="a local path or a git remote URL; unset: the "
                             "bundled example deployment")
    branch: str = Field("main", description="the branch proposals merge into")
    # never a leading '-': git would read `git fetch|push <remote>` as an option
    remote: str = Field("origin", pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,59}$")
    push: bool = Field(True, description="push proposal branches, merges and reverts")

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _BRANCH.match(value):
            raise ValueError(f"{value!r} is not a usable branch name")
        return value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.startswith("-")
                                  or any(ord(c) < 32 for c in value)):
            raise ValueError(f"{value!r} is not a path or a git remote")
        return value


class PolicySettings(_Section):
    """Additions to the built-in policy tests (they can only tighten them, or widen the
    URL allow-list)."""

    forbidden_paths: tuple[str, ...] = ()
    allowed_paths: tuple[str, ...] = Field((), description="where a writer may write "
                                           "(globs); empty: anywhere not forbidden")
    allowed_domains: tuple[str, ...] = ()
    schedule_files: tuple[str, ...] = ("scheduled_tasks.yaml", "scheduled_tasks.yml")

    @field_validator("forbidden_paths", "allowed_paths", "schedule_files")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for glob in value:
            if not glob or glob.startswith("/") or "\0" in glob:
                raise ValueError(f"{glob!r} is not a repository-relative path glob")
        return value


class WriterSettings(_Section):
    """Who writes the diff for a finding: the rule templates (offline) or an LLM."""

    kind: Literal["rules", "llm"] = "rules"
    max_attempts: int = Field(3, ge=1, le=10, description="the repair loop's attempts")
    max_diff_bytes: int = Field(64 * 1024, ge=256, le=4 << 20)


class LLMSettings(_Section):
    """An OpenAI-compatible endpoint (the key comes from the environment only)."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: EnvName = "OURO_LLM_API_KEY"
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(2, ge=0, le=10)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "llm.base_url")


class ForgeSettings(_Section):
    """Where pull requests are opened."""

    kind: Literal["none", "github", "gitlab"] = "none"
    api_url: str | None = None
    repository: str | None = Field(None, description="owner/name (GitHub) or the project "
                                   "path or id (GitLab)")
    token_env: EnvName = "OURO_FORGE_TOKEN"

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "forge.api_url")

    @model_validator(mode="after")
    def _complete(self) -> ForgeSettings:
        if self.kind != "none" and not self.repository:
            raise ValueError(f"forge kind {self.kind!r} needs repository = \"owner/name\"")
        if self.repository and not re.match(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
                                            self.repository):
            raise ValueError(f"{self.repository!r} is not a repository path")
        return self

    @property
    def base_url(self) -> str:
        default = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
        return self.api_url or default.get(self.kind, "")


class DeploySettings(_Section):
    """A command run in the target checkout after each merge (argv, no shell)."""

    command: tuple[str, ...] = ()
    timeout_s: float = Field(600.0, gt=0, le=24 * 3600)


class MonitorSettings(_Section):
    window_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)
    max_rise: float = Field(0.25, gt=0, le=100)
    min_calls: int = Field(20, ge=1)


class ScanSettings(_Section):
    """The enhancement scan's thresholds."""

    stale_days: float = Field(90.0, gt=0, description="a tool unused this long is stale")
    failure_rise: float = Field(2.0, gt=1, description="failure rate ratio vs the baseline")
    min_runs: int = Field(10, ge=1)
    drift_ratio: float = Field(0.5, gt=0, le=1, description="prompt share changed since the "
                               "first applied version")


class ChatSettings(_Section):
    signing_secret_env: EnvName = "SLACK_SIGNING_SECRET"
    max_skew_s: int = Field(300, ge=1, le=3600)


class ImproveSettings(_Section):
    target: TargetSettings = TargetSettings()
    schemas: dict[str, str] = Field(default_factory=dict, description="repository path (glob) "
                                    "-> JSON Schema file in the repository")
    policy: PolicySettings = PolicySettings()
    writer: WriterSettings = WriterSettings()
    forge: ForgeSettings = ForgeSettings()
    deploy: DeploySettings = DeploySettings()
    monitor: MonitorSettings = MonitorSettings()
    scan: ScanSettings = ScanSettings()
    chat: ChatSettings = ChatSettings()

    @field_validator("schemas")
    @classmethod
    def _schemas(cls, value: dict[str, str]) -> dict[str, str]:
        for path, schema in value.items():
            for item in (path, schema):
                if not item or item.startswith("/") or ".." in item.split("/"):
                    raise ValueError(f"{item!r} is not a repository-relative path")
        return value


class NotifySettings(_Section):
    """Where notifications go: this webhook (JSON POST), else stderr."""

    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "notify.webhook_url")


class Schedules(_Section):
    """When ``ouro serve`` and ``ouro improve run`` run each job of the scheduler's registry
    (``ouroboros.capabilities.improve.schedule``); a job registered by an extension and
    not named here keeps its own default."""

    extract: str = "every 5m"
    evaluate: str = "@hourly"
    tick: str = "every 5m"
    scan: str = "@weekly"
    notify: str = "every 1m"

    @field_validator("*")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)


class TelemetrySettings(_Section):
    """The runtime's own spans: always into the store; optionally to an OTLP collector."""

    otlp_endpoint: str | None = None
    trusted_sources: tuple[str, ...] = Field((), description="OTLP token names whose "
        "telemetry is trusted like the runtime's own (`local`): a critical severity they "
        "declare is a finding alone, and a monitoring window may be judged on them alone")

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "telemetry.otlp_endpoint")


class Settings(_Section):
    """The whole of ``ouro.toml`` (or ``[tool.ouroboros]``)."""

    improve: ImproveSettings = ImproveSettings()
    llm: LLMSettings = LLMSettings()
    notify: NotifySettings = NotifySettings()
    schedules: Schedules = Schedules()
    telemetry: TelemetrySettings = TelemetrySettings()
