"""A user's own repository for the loop (not the example): a small service configuration
with its own schema and policy, a bare remote on disk, a fake forge and an LLM writer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ouroboros.capabilities.improve.analysis import Finding
from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.forge import forge_from_settings
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
from ouroboros.capabilities.improve.proposals.notify import RecordingNotifier
from ouroboros.capabilities.improve.registrar import attach, llm_writer
from ouroboros.kernel import Runtime
from ouroboros.kernel.settings import Settings, load_settings

from .fakeforge import FakeForge, git
from .loopkit import T0, Clock

SERVICE = """\
# the search service's client settings
tools:
  search:
    timeout_s: 10
    max_retries: 1
  fetch:
    timeout_s: 20
    max_retries: 2
"""
FIXED = SERVICE.replace("timeout_s: 10", "timeout_s: 30").replace("max_retries: 1", "max_retries: 3")
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {"tools": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": False,
        "properties": {"timeout_s": {"type": "integer", "minimum": 1, "maximum": 120},
                       "max_retries": {"type": "integer", "minimum": 0, "maximum": 5}}}}},
}
REPO_CONFIG = """\
[improve.schemas]
"config/service.yaml" = "schemas/service.schema.json"

[improve.policy]
allowed_paths = ["config/*.yaml"]
"""
ENV_SECRET = "sk-live-THIS-MUST-NEVER-REACH-THE-MODEL-1234567890"
TEST_MARKER = "assert search_is_fast()"


def make_user_repo(tmp: Path) -> tuple[Path, Path]:
    """A fresh repository (its own files, schema and policy) and a bare clone as its remote."""
    repo = tmp / "service"
    (repo / "config").mkdir(parents=True)
    (repo / "schemas").mkdir()
    (repo / "tests").mkdir()
    (repo / "src").mkdir()
    (repo / "config" / "service.yaml").write_text(SERVICE)
    (repo / "schemas" / "service.schema.json").write_text(json.dumps(SCHEMA, indent=1))
    (repo / "ouro.toml").write_text(REPO_CONFIG)
    (repo / "tests" / "test_service.py").write_text(f"def test_fast():\n    {TEST_MARKER}\n")
    (repo / "src" / "app.py").write_text("print('service')\n")
    (repo / ".env").write_text(f"API_KEY={ENV_SECRET}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "service")
    remote = tmp / "service.git"
    git(tmp, "clone", "-q", "--bare", str(repo), str(remote))
    return repo, remote


def settings_toml(remote: Path, forge_url: str, llm_url: str, marker: Path,
                  kind: str = "github", attempts: int = 3) -> str:
    deploy = json.dumps([sys.executable, "-c",
                         "import os,sys; open(sys.argv[1],'a').write(os.environ['OURO_COMMIT']"
                         "+'\\n')", str(marker)])
    return f"""\
[improve.target]
repo = "{remote}"
branch = "main"

[improve.writer]
kind = "llm"
max_attempts = {attempts}

[improve.forge]
kind = "{kind}"
api_url = "{forge_url}"
repository = "acme/service"

[improve.deploy]
command = {deploy}

[improve.monitor]
window_minutes = 60

[llm]
base_url = "{llm_url}"
model = "writer-model"
timeout_s = 10
max_retries = 0
"""


def answer(diff: str, title: str = "Raise search timeout", **extra: Any) -> str:
    return json.dumps({"title": title, "category": "bugfix",
                       "problem": "search times out", "root_cause": "timeout too short",
                       "solution": "raise it", "risk": "slower failures", "diff": diff, **extra})


def good_diff() -> str:
    return make_diff("config/service.yaml", SERVICE, FIXED)


def timeout_finding() -> Finding:
    return Finding("timeout_cluster", "high", "search", None,
                   "search timed out 40 times in 10 minutes",
                   ("timeouts: 40 in one bucket",), 40, {"timeouts": 40.0})


@dataclass
class World:
    tmp: Path
    repo: Path
    remote: Path
    forge: FakeForge
    rt: Runtime
    loop: ImproveLoop
    clock: Clock
    events: list[dict[str, Any]]
    notes: RecordingNotifier
    marker: Path
    settings: Settings

    def remote_main(self) -> str:
        return git(self.remote, "rev-parse", "main").strip()

    def remote_file(self, path: str, ref: str = "main") -> str:
        return git(self.remote, "show", f"{ref}:{path}")

    def remote_branches(self) -> list[str]:
        out = git(self.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return sorted(out.split())

    def calls(self, minutes: float, n: int, failed: int, start_after: timedelta) -> None:
        """``n`` tool calls spread over ``minutes`` from now + ``start_after``; the first
        ``failed`` fail."""
        start = self.clock.now() + start_after
        for i in range(n):
            at = start + timedelta(seconds=60 * minutes * i / max(n, 1))
            self.events.append({"timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                "event_type": "tool_call", "agent": "svc", "tool": "search",
                                "success": i >= failed, "latency_ms": 100.0,
                                "source": "local"})  # as the store stamps them


def make_world(tmp: Path, llm_url: str, kind: str = "github", attempts: int = 3
               ) -> Iterator[World]:
    repo, remote = make_user_repo(tmp)
    forge = FakeForge(remote, kind)
    clock = Clock(T0 + timedelta(days=1))
    home = tmp / "ws"
    rt = Runtime.init(home, clock=clock)
    marker = tmp / "deployed.txt"
    (home / "ouro.toml").write_text(settings_toml(remote, forge.url, llm_url, marker, kind,
                                                  attempts))
    settings = load_settings(home, cwd=tmp, env={}).settings
    events: list[dict[str, Any]] = []
    notes = RecordingNotifier()
    from .fakeforge import TOKEN

    forge_client = forge_from_settings(settings.improve.forge, env={"OURO_FORGE_TOKEN": TOKEN})
    loop = attach(rt, events=lambda since, until: events, notifier=notes, clock=clock,
                  settings=settings.improve, forge=forge_client)
    loop.writer = llm_writer(rt, settings)
    try:
        yield World(tmp, repo, remote, forge, rt, loop, clock, events, notes, marker, settings)
    finally:
        forge.close()
        rt.close()


def hooked_remote(remote: Path, refuse: str) -> None:
    """Make the bare remote refuse pushes whose ref matches ``refuse`` (a shell pattern)."""
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in\n"
                    f"    {refuse}) echo \"policy: pushes to $ref are refused\" >&2; exit 1;;\n"
                    "  esac\ndone\nexit 0\n")
    hook.chmod(0o755)
