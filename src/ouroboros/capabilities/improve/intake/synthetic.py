"""Seeded synthetic telemetry with injected faults, for tests, the demo and benchmarks.

The background is a healthy deployment: a handful of agents calling tools with
log-normal latencies, a 0.5 % background failure rate spread over many distinct
error texts (noise, which the analysis must ignore), occasional feedback and
corrections. Faults are layered on top for a time range: timeouts of one tool,
an error spike, a latency regression, failing scheduled tasks, a correction
wave, and secrets leaking into error messages. The same seed gives the same
events, so a test can assert exact findings.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ouroboros.capabilities.improve.intake.events import format_timestamp

#: (agent, tool, median latency ms) pairs of the background deployment.
DEPLOYMENT: tuple[tuple[str, str, float], ...] = (
    ("ResearchAgent", "web_search", 900.0),
    ("ResearchAgent", "fetch_page", 400.0),
    ("CodeAgent", "run_python", 250.0),
    ("CodeAgent", "file_read", 15.0),
    ("OpsAgent", "db_query", 40.0),
    ("OpsAgent", "send_message", 120.0),
)
TASKS = ("telemetry-extract", "self-eval", "rag-refresh", "daily-digest")
NOISE = (
    ("HTTP_500", "Upstream returned 500"),
    ("HTTP_502", "Bad gateway from upstream"),
    ("RATE_LIMITED", "Rate limited, retry after 2s"),
    ("PARSE_ERROR", "Could not parse tool output"),
    ("NOT_FOUND", "Resource not found"),
    ("CONN_RESET", "Connection reset by peer"),
    ("INVALID_ARGS", "Tool called with invalid arguments"),
)


@dataclass(frozen=True)
class Timeouts:
    """``tool`` (of ``agent``, or any) times out with probability ``rate``."""

    start: datetime
    end: datetime
    tool: str = "web_search"
    agent: str | None = "ResearchAgent"
    rate: float = 0.6
    timeout_s: int = 30


@dataclass(frozen=True)
class ErrorSpike:
    """Every tool (or one) fails with probability ``rate``."""

    start: datetime
    end: datetime
    rate: float = 0.5
    tool: str | None = None
    error_code: str = "UPSTREAM_UNAVAILABLE"
    message: str = "Upstream service unavailable (503)"


@dataclass(frozen=True)
class LatencyRegression:
    start: datetime
    end: datetime
    tool: str = "db_query"
    factor: float = 5.0


@dataclass(frozen=True)
class TaskFailures:
    start: datetime
    end: datetime
    task_name: str = "rag-refresh"
    per_hour: float = 1.0
    error_category: str = "DEPENDENCY_DOWN"


@dataclass(frozen=True)
class Corrections:
    start: datetime
    end: datetime
    agent: str = "ResearchAgent"
    per_hour: float = 4.0
    correction_type: str = "factual_error"


@dataclass(frozen=True)
class LeakedSecrets:
    """Error messages that carry secrets, IPs and paths: food for the sanitizer."""

    start: datetime
    end: datetime
    rate: float = 0.01


Fault = Timeouts | ErrorSpike | LatencyRegression | TaskFailures | Corrections | LeakedSecrets


def _active(fault: Fault, moment: datetime) -> bool:
    return fault.start <= moment < fault.end


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def planted_secret(kind: str, rng: random.Random) -> str:
    """A syntactically valid, random (never real) secret of ``kind``."""
    alnum = string.ascii_letters + string.digits
    upper = string.ascii_uppercase + string.digits
    hexd = "0123456789abcdef"

    def t(n: int, a: str = alnum) -> str:
        return _token(rng, n, a)

    makers = {
        "aws_access_key_id": lambda: "AKIA" + t(16, upper),
        "aws_secret_access_key": lambda: "aws_secret_access_key=" + t(40, alnum + "/+"),
        "gcp_api_key": lambda: "AIza" + t(35, alnum + "_-"),
        "gcp_oauth_token": lambda: "ya29." + t(60, alnum + "_-"),
        "azure_storage_key": lambda: "AccountKey=" + t(86, alnum + "+/") + "==",
        "azure_client_secret": lambda: t(3) + str(rng.randint(0, 9)) + "Q~" + t(34, alnum + "_~."),
        "github_token": lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + t(36),
        "github_fine_grained_pat": lambda: "github_pat_" + t(22) + "_" + t(59),
        "gitlab_token": lambda: "glpat-" + t(20, alnum + "_-"),
        "openai_api_key": lambda: "sk-proj-" + t(48, alnum + "_-"),
        "anthropic_api_key": lambda: "sk-ant-api03-" + t(93, alnum + "_-") + "AA",
        "huggingface_token": lambda: "hf_" + t(34),
        "groq_api_key": lambda: "gsk_" + t(52),
        "slack_token": lambda: (
            "xoxb-" + t(12, string.digits) + "-" + t(13, string.digits) + "-" + t(24)
        ),
        "discord_bot_token": lambda: "M" + t(25) + "." + t(6) + "." + t(38, alnum + "_-"),
        "telegram_bot_token": lambda: (
            str(rng.randint(10**8, 10**10 - 1)) + ":AA" + t(33, alnum + "_-")
        ),
        "jwt": lambda: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + t(20) + "." + t(43, alnum + "_-"),
        "private_key": lambda: (
            "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow"
            + t(64, alnum + "+/")
            + "\\n-----END RSA PRIVATE KEY-----"
        ),
        "url_credentials": lambda: f"postgres://admin:{t(14)}@db.internal.example:5432/prod",
        "stripe_key": lambda: "sk_live_" + t(24),
        "sendgrid_api_key": lambda: "SG." + t(22, alnum + "_-") + "." + t(43, alnum + "_-"),
        "npm_token": lambda: "npm_" + t(36),
        "twilio_api_key": lambda: "SK" + t(32, hexd),
        "password_assignment": lambda: "password=" + t(10) + "7!",
        "bearer_token": lambda: "Authorization: Bearer " + t(40, alnum + "._-"),
    }
    return makers[kind]()


def secret_core(kind: str, text: str) -> str:
    """The part of a :func:`planted_secret` text that must never be stored."""
    if kind in ("aws_secret_access_key", "azure_storage_key", "password_assignment"):
        return text.split("=", 1)[1]
    if kind == "bearer_token":
        return text.split("Bearer ", 1)[1]
    if kind == "url_credentials":
        return text.split("admin:", 1)[1].split("@", 1)[0]
    if kind == "private_key":
        return text.split("MIIEow", 1)[1].split("\\n", 1)[0]
    return text


SECRET_KINDS = (
    "aws_access_key_id", "aws_secret_access_key", "gcp_api_key", "gcp_oauth_token",
    "azure_storage_key", "azure_client_secret", "github_token", "github_fine_grained_pat",
    "gitlab_token", "openai_api_key", "anthropic_api_key", "huggingface_token", "groq_api_key",
    "slack_token", "discord_bot_token", "telegram_bot_token", "jwt", "private_key",
    "url_credentials", "stripe_key", "sendgrid_api_key", "npm_token", "twilio_api_key",
    "password_assignment", "bearer_token",
)  # fmt: skip


def generate(
    start: datetime,
    end: datetime,
    *,
    events_per_hour: float = 600.0,
    faults: Sequence[Fault] = (),
    seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """Events in time order over ``[start, end)``; raw (unsanitized) like real input."""
    rng = random.Random(seed)
    step = 3600.0 / events_per_hour
    total = int((end - start).total_seconds() / step)
    sessions: list[str] = []
    hour = -1
    for i in range(total):
        moment = start + timedelta(seconds=i * step + rng.random() * step)
        ts = format_timestamp(moment)
        if int(i * step // 3600) != hour:  # conversations last about an hour
            hour = int(i * step // 3600)
            per_hour = max(20, int(events_per_hour / 30))  # about 30 events per conversation
            sessions = [f"sess-{hour}-{_token(rng, 8)}" for _ in range(per_hour)]
        roll = rng.random()
        yield from _fault_events(faults, moment, ts, rng, step)
        if roll < 0.94:
            yield _tool_call(faults, moment, ts, rng, sessions)
        elif roll < 0.96:
            agent = rng.choice(DEPLOYMENT)[0]
            yield {"timestamp": ts, "event_type": "feedback", "agent": agent,
                   "rating": "down" if rng.random() < 0.1 else "up", "session_id": rng.choice(sessions)}  # fmt: skip
        elif roll < 0.962:
            yield {"timestamp": ts, "event_type": "user_correction", "agent": rng.choice(DEPLOYMENT)[0],
                   "correction_type": rng.choice(("rephrase", "format", "incomplete")),
                   "session_id": rng.choice(sessions)}  # fmt: skip
        elif roll < 0.97:
            yield {"timestamp": ts, "event_type": "escalation", "agent": rng.choice(DEPLOYMENT)[0],
                   "reason_category": rng.choice(("needs_human", "missing_tool", "policy"))}  # fmt: skip
        elif roll < 0.97005:
            yield {"timestamp": ts, "event_type": "task_failure", "task_name": rng.choice(TASKS),
                   "error_category": "TRANSIENT", "retry_count": 1}  # fmt: skip


def _fault_events(
    faults: Sequence[Fault], moment: datetime, ts: str, rng: random.Random, step: float
) -> Iterator[dict[str, Any]]:
    """Poisson-ish extra events (task failures, corrections) for active faults."""
    for fault in faults:
        if not _active(fault, moment):
            continue
        if isinstance(fault, TaskFailures) and rng.random() < fault.per_hour * step / 3600:
            yield {"timestamp": ts, "event_type": "task_failure", "task_name": fault.task_name,
                   "error_category": fault.error_category, "retry_count": 3,
                   "error_message": "Dependency unavailable after 3 retries"}  # fmt: skip
        elif isinstance(fault, Corrections) and rng.random() < fault.per_hour * step / 3600:
            yield {"timestamp": ts, "event_type": "user_correction", "agent": fault.agent,
                   "correction_type": fault.correction_type, "session_id": f"sess-c{rng.randint(0, 999)}",
                   "user_message": "No, that is wrong, the answer is ..."}  # fmt: skip


def _tool_call(
    faults: Sequence[Fault], moment: datetime, ts: str, rng: random.Random, sessions: list[str]
) -> dict[str, Any]:
    agent, tool, median = rng.choice(DEPLOYMENT)
    latency = rng.lognormvariate(0.0, 0.35) * median
    event: dict[str, Any] = {"timestamp": ts, "event_type": "tool_call", "agent": agent, "tool": tool,
                             "success": True, "session_id": rng.choice(sessions)}  # fmt: skip
    failure: tuple[str, str] | None = None
    if rng.random() < 0.005:
        code, message = rng.choice(NOISE)
        failure = (code, f"{message} (request {rng.randint(1, 10**6)})")
    for fault in faults:
        if not _active(fault, moment):
            continue
        if isinstance(fault, Timeouts) and fault.tool == tool and fault.agent in (None, agent):
            if rng.random() < fault.rate:
                failure = ("TIMEOUT", f"Request timed out after {fault.timeout_s}s")
                latency = fault.timeout_s * 1000.0
        elif (
            isinstance(fault, ErrorSpike)
            and fault.tool in (None, tool)
            and rng.random() < fault.rate
        ):
            failure = (fault.error_code, fault.message)
        elif isinstance(fault, LatencyRegression) and fault.tool == tool:
            latency *= fault.factor
        elif isinstance(fault, LeakedSecrets) and failure is None and rng.random() < fault.rate:
            secret = planted_secret(rng.choice(SECRET_KINDS), rng)
            failure = ("AUTH_FAILED", f"call to https://api.example.com/v1/x?key=1 from 10.2.3.4 "
                       f"failed reading /home/alice/.env: {secret}")  # fmt: skip
    event["latency_ms"] = round(latency, 1)
    if failure is not None:
        event["success"] = False
        event["error_code"], event["error_message"] = failure
    return event


def scenario(now: datetime) -> list[Fault]:
    """The demo's story: a healthy week, then web_search times out in the last day."""
    return [
        Timeouts(start=now - timedelta(hours=6), end=now - timedelta(hours=3), rate=0.7),
        LeakedSecrets(start=now - timedelta(hours=12), end=now, rate=0.005),
    ]


def write_jsonl(events: Iterator[dict[str, Any]] | Sequence[dict[str, Any]], path: Path) -> int:
    """Writes events one per line; returns the count."""
    count = 0
    with path.open("wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    return count
