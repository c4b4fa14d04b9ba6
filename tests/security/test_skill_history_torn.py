"""`ouro tool history` after a crash mid-append (a torn last line) or a scribbled line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills.authoring import ToolAuthor, history_path, read_history
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.interfaces.cli.main import app
from ouroboros.kernel import Runtime

RECORD = {"action": "create", "attempt": 1, "of": 3, "model": "m", "outcome": "rejected",
          "reason": "tests", "detail": "case 0"}


@pytest.mark.parametrize("bad", ['{"action": "cre', "[1, 2]", "null", "\x00\x01garbage",
                                 '{"action": 1}'])
def test_a_torn_or_scribbled_history_line_is_skipped_and_the_next_record_kept(
    tmp_path: Path, bad: str
) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    with Runtime.open(home) as rt:
        store = open_store(rt)
        path = history_path(store.root, "double")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(RECORD) + "\n" + bad)  # the crash: no newline after it
        ToolAuthor(store, provider=None)._record("double", {**RECORD, "attempt": 2})  # type: ignore[arg-type]
        records = read_history(store.root, "double")
    assert [r["attempt"] for r in records if r.get("action") == "create"] == [1, 2]
    for args in (["tool", "history", "double", "--json"], ["tool", "history", "double"]):
        result = CliRunner().invoke(app, [*args, "--home", str(home)])
        assert result.exit_code == 0, result.output
        assert "bug in ouro" not in result.output


@pytest.mark.parametrize("bad", [b"[1, 2]", b'{"tasks": "many"}', b'{"tasks": 1e999}',
                                 b'{"reused": [3]}', b"\xff\xfe", b'{"tasks": -5}', b"null"])
def test_a_scribbled_solve_stats_file_neither_breaks_stats_nor_the_next_solve(
    tmp_path: Path, bad: bytes
) -> None:
    from ouroboros.capabilities.skills.control import SolveStats, stats_path

    home = tmp_path / "ws"
    Runtime.init(home).close()
    with Runtime.open(home) as rt:
        path = stats_path(open_store(rt).root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad)
    result = CliRunner().invoke(app, ["tool", "stats", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert all(isinstance(v, int) and v >= 0 for k, v in counts.items() if k != "reuse_rate")
    after = SolveStats(path).bump("reused")  # what a solve does when it ends
    assert after["reused"] >= 1 and after["tasks"] >= 1
    assert json.loads(path.read_text())["reused"] == after["reused"]
