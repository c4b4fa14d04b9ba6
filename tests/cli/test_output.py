"""Output a person reads: 80 columns, whole hashes and dates, no Python reprs, user text
shown as written (not as Rich markup or emoji codes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .clikit import env, run

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "src/ouroboros/capabilities/skills/starter"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("out")
    home = root / "ws"
    assert run("init", "--home", str(home)).code == 0
    assert run("key", "new", "alice", "--home", str(home)).code == 0
    assert run("trust", "grant", "alice", "--types", "prompt", "--home", str(home)).code == 0
    text = root / "p.txt"
    text.write_text("Say [red]hello[/red] :x: to 1234567890abcdef users.")
    env_file = root / "p.json"
    assert run("patch", "new", "--type", "prompt", "--target", "agents/x/prompt",
               "--text", str(text), "--reason", "why [i]not[/i]", "--author", "alice",
               "-o", str(env_file), "--home", str(home)).code == 0
    assert run("patch", "sign", str(env_file), "--key", "alice", "--home", str(home)).code == 0
    assert run("patch", "submit", str(env_file), "--home", str(home)).code == 0
    assert run("tool", "add", str(STARTER / "sum_ints"), "--home", str(home)).code == 0
    return home


def lines_fit(text: str, width: int = 80) -> bool:
    """Every line fits, but for one that ends in a single unbreakable token (a path)."""
    plain = [ANSI.sub("", line) for line in text.splitlines()]
    return all(len(line) <= width or len(line.split()[-1]) > 40 for line in plain)


@pytest.mark.parametrize("args", [["log"], ["state"], ["key", "list"], ["trust", "show"],
                                  ["tool", "list"], ["tool", "describe", "sum_ints"],
                                  ["pending"], ["breakers"]])
def test_tables_fit_80_columns_without_cutting_ids_or_dates(ws: Path, args: list[str]) -> None:
    with env(COLUMNS="80"):
        r = run(*args, "--home", str(ws))
    assert r.code == 0, r.describe()
    assert lines_fit(r.stdout), r.stdout
    assert "…" not in r.stdout, r.stdout  # rich's ellipsis: a cut id, hash or date


def test_log_shows_whole_times(ws: Path) -> None:
    with env(COLUMNS="80"):
        out = run("log", "--home", str(ws)).stdout
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", out)


def test_user_text_is_shown_as_written(ws: Path) -> None:
    out = run("state", "agents/x/prompt", "--home", str(ws)).stdout
    assert out.strip() == "Say [red]hello[/red] :x: to 1234567890abcdef users."
    log = run("log", "--home", str(ws)).stdout
    assert "agents/x/prompt" in log


def test_no_highlighter_splits_a_hash(ws: Path, tmp_path: Path) -> None:
    """With colour on, hashes stay in one piece (rich's highlighter took "a256:2101" of
    "sha256:2101…" for an IPv6 address and coloured it)."""
    from ouroboros.interfaces.cli import output

    text = tmp_path / "t.txt"
    text.write_text("Be kind.")
    envelope = tmp_path / "e.json"
    run("patch", "new", "--type", "prompt", "--target", "agents/y/prompt", "--text", str(text),
        "--reason", "r", "--author", "alice", "-o", str(envelope), "--home", str(ws))
    run("patch", "sign", str(envelope), "--key", "alice", "--home", str(ws))
    saved = output.console
    # The real console's settings, on a terminal with colour.
    output.console = type(saved)(soft_wrap=True, highlight=saved._highlight,
                                 emoji=saved._emoji, force_terminal=True,
                                 color_system="truecolor")
    try:
        r = run("patch", "submit", str(envelope), "--home", str(ws))
    finally:
        output.console = saved
    assert r.code == 0, r.describe()
    assert re.search(r"sha256:[0-9a-f]{64} at seq", r.stdout), (
        f"the hash is split by escape codes: {r.stdout!r}")


def test_describe_has_no_python_reprs(ws: Path) -> None:
    out = run("tool", "describe", "sum_ints", "--home", str(ws)).stdout
    assert "None" not in out and "{'" not in out and "True" not in out
    assert "parent      none (first version)" in out
    assert re.search(r"tests\s+\d+/\d+ cases passed, \d+ hidden", out)
    assert "last used never" in out


def test_proposals_status_has_no_python_reprs(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    run("init", "--home", str(home))
    out = run("proposals", "status", "--home", str(home)).stdout
    assert "None" not in out and "{" not in out and "[]" not in out, out
    assert "halted: no" in out and "monitoring: nothing" in out


def test_monitor_describes_no_calls_in_words() -> None:
    from ouroboros.capabilities.improve.proposals.monitor import Check

    text = Check("p1", "stable", 0.05, 0.0, 0).describe()
    assert "no calls" in text and "%" in text and "+" not in text


def test_progress_is_for_a_person_only() -> None:
    """Never under --json, never when stderr is not a terminal."""
    from ouroboros.interfaces.cli import output

    saved = output.err_console
    try:
        output.err_console = type(saved)(stderr=True, force_terminal=True)
        output.set_json_mode(False)
        assert output.progress_enabled()
        output.set_json_mode(True)
        assert not output.progress_enabled()
        output.set_json_mode(False)
        output.err_console = type(saved)(stderr=True, force_terminal=False)
        assert not output.progress_enabled()
    finally:
        output.err_console = saved
        output.set_json_mode(False)
