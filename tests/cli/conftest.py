"""A populated workspace the command walker runs every command against.

It holds a trusted key, an applied prompt, a pending prompt patch (from an agent set up
with `ouro agent add`), a WAT tool and some telemetry, so commands reach their real code
paths instead of stopping at "no workspace".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .clikit import Files, env, run

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "src/ouroboros/capabilities/skills/starter"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory for the session: commands that write beside their inputs or
    into the current directory write here, never into the repository."""
    root = tmp_path_factory.mktemp("cli")
    before = Path.cwd()
    os.chdir(root)
    try:
        with env(OURO_HOME=str(root / "ws"), OURO_LLM_BASE_URL=None, OURO_LLM_MODEL=None,
                 OURO_LLM_API_KEY=None, OURO_WEBHOOK_URL=None, COLUMNS="80", NO_COLOR="1"):
            yield root
    finally:
        os.chdir(before)


@pytest.fixture(scope="session")
def files(sandbox: Path) -> Files:
    return Files(sandbox / "hostile")


@pytest.fixture(scope="session")
def home(sandbox: Path) -> Path:
    ws = sandbox / "ws"

    def ok(*args: str) -> None:
        r = run(*args, *(() if args[:2] == ("telemetry", "generate") else ("--home", str(ws))))
        assert r.code in (0, 4), r.describe()

    ok("init")
    ok("key", "new", "alice")
    ok("trust", "grant", "alice", "--types", "prompt,config", "--targets", "agents/*")
    (sandbox / "prompt.txt").write_text("You are terse.")
    ok("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
       str(sandbox / "prompt.txt"), "--reason", "first", "--author", "alice", "-o",
       str(sandbox / "p.json"))
    ok("patch", "sign", str(sandbox / "p.json"), "--key", "alice")
    ok("patch", "submit", str(sandbox / "p.json"))
    ok("agent", "add", "bot")
    ok("patch", "new", "--type", "prompt", "--target", "agents/bot/prompt", "--text",
       str(sandbox / "prompt.txt"), "--reason", "mine", "--author", "bot", "-o",
       str(sandbox / "q.json"))
    ok("patch", "sign", str(sandbox / "q.json"), "--key", "bot")
    ok("patch", "submit", str(sandbox / "q.json"))
    ok("tool", "add", str(STARTER / "sum_ints"))
    events = sandbox / "events.jsonl"
    ok("telemetry", "generate", str(events), "--days", "1", "--rate", "60")
    ok("telemetry", "ingest", str(events))
    return ws
