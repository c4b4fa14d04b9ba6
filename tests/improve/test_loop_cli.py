"""``ouro proposals``: JSON reads, exit codes, one-line errors, the demo."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.interfaces.cli.proposals import app, propose_from_findings, run_demo
from ouroboros.kernel import ManualClock, Runtime

from .loopkit import T0, tool_events

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    clock = ManualClock(T0 + timedelta(hours=24))
    with Runtime.init(home, clock=clock) as rt:
        events = tool_events(T0, 24, {"web_search": 0.3})
        TelemetryStore(home, clock=clock.now).append(events)
        outcomes = propose_from_findings(rt, analyse(events, clock.now()))
        assert [o.proposal.status for o in outcomes] == ["pending"]
    return home


def _run(home: Path, *args: str) -> tuple[int, str]:
    """Exit code and what a script reads: stdout for --json, everything otherwise."""
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.stdout if "--json" in args else result.output


def test_list_and_show_as_json(home: Path) -> None:
    code, out = _run(home, "list", "--json")
    assert code == 0
    (item,) = json.loads(out)
    assert item["status"] == "pending" and item["key"] == "tool-timeout:web_search"
    code, out = _run(home, "show", item["id"][:5], "--json")
    shown = json.loads(out)
    assert code == 0 and "+    timeout_s: 60" in shown["diff"]


def test_approve_merges_and_exits_0(home: Path) -> None:
    (item,) = json.loads(_run(home, "list", "--json")[1])
    code, out = _run(home, "approve", item["id"], "--reviewer", "alice", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "implemented"
    code, out = _run(home, "list", "--status", "implemented", "--json")
    assert [p["id"] for p in json.loads(out)] == [item["id"]]


def test_reject_needs_a_reason(home: Path) -> None:
    (item,) = json.loads(_run(home, "list", "--json")[1])
    code, _ = _run(home, "reject", item["id"])
    assert code == 2
    code, out = _run(home, "reject", item["id"], "--reason", "not now", "--json")
    assert code == 0 and json.loads(out)["review"]["notes"] == "not now"


def test_apply_of_pending_waits_for_approval_exit_4(home: Path) -> None:
    (item,) = json.loads(_run(home, "list", "--json")[1])
    code, out = _run(home, "apply", item["id"])
    assert code == 4 and "pending; approve it first" in out


def test_unknown_id_is_a_usage_error(home: Path) -> None:
    code, out = _run(home, "show", "ffffff")
    assert code == 2 and "no proposal 'ffffff'" in out


def test_halted_loop_refuses_apply_with_exit_3(home: Path) -> None:
    (item,) = json.loads(_run(home, "list", "--json")[1])
    with Runtime.open(home) as rt:
        from ouroboros.interfaces.cli.proposals import loop_for

        loop_for(rt).breakers.halt("test")
    code, out = _run(home, "approve", item["id"], "--json")
    assert code == 4 and "merge deferred" in json.loads(out)["message"]
    code, out = _run(home, "apply", item["id"])
    assert code == 3 and "halted" in out
    assert _run(home, "reset")[0] == 0
    code, out = _run(home, "apply", item["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "implemented"


def test_status_and_chat(home: Path) -> None:
    code, out = _run(home, "status", "--json")
    assert code == 0 and json.loads(out)["pending"] == 1
    code, out = _run(home, "chat", "proposals list")
    assert code == 0 and "Raise web_search timeout" in out
    code, out = _run(home, "chat", "hello")
    assert code == 2


def test_missing_workspace_is_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--home", str(tmp_path / "nope")])
    assert result.exit_code != 0


def test_run_demo_narrates_the_whole_loop(tmp_path: Path) -> None:
    lines: list[str] = []
    with Runtime.init(tmp_path / "demo") as rt:
        run_demo(rt, lines.append)
    text = "\n".join(lines)
    for needle in ("Raise web_search timeout", "blocked at the audit gate", "merged into main",
                   "stable", "auto-reverted", "reset"):
        assert needle in text


def test_new_proposal_from_a_diff_file(home: Path, tmp_path: Path) -> None:
    from ouroboros.capabilities.improve.proposals.diffs import make_diff

    with Runtime.open(home) as rt:
        from ouroboros.interfaces.cli.proposals import loop_for

        runbook = loop_for(rt).repo.read("main", "docs/runbook.md") or ""
        contract = loop_for(rt).repo.read("main", "SYSTEM_CONTRACT.md") or ""
    good = tmp_path / "good.diff"
    good.write_text(make_diff("docs/runbook.md", runbook, runbook + "- a note\n"))
    code, out = _run(home, "new", "--diff", str(good), "--title", "Add a note",
                     "--category", "enhancement", "--severity", "low", "--json")
    assert code == 4 and json.loads(out)["status"] == "pending"
    bad = tmp_path / "bad.diff"
    bad.write_text(make_diff("SYSTEM_CONTRACT.md", contract, contract + "6. Anything goes.\n"))
    code, out = _run(home, "new", "--diff", str(bad), "--title", "Loosen", "--json")
    assert code == 3 and "SYSTEM_CONTRACT.md must never be modified" in json.loads(out)["review"]["notes"]
    junk = tmp_path / "junk.diff"
    junk.write_text("not a diff")
    code, out = _run(home, "new", "--diff", str(junk), "--title", "x")
    assert code == 2 and "not a unified diff" in out
    code, out = _run(home, "new", "--diff", str(tmp_path / "missing"), "--title", "x")
    assert code == 2 and "missing does not exist" in out


def test_kernel_cli_approve_merges_once_the_registrar_is_wired(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ouroboros.interfaces.cli import output
    from ouroboros.interfaces.cli.main import app as ouro

    monkeypatch.setattr(output, "CAPABILITY_REGISTRARS",
                        [*output.CAPABILITY_REGISTRARS, "ouroboros.capabilities.improve.registrar"])
    (item,) = json.loads(_run(home, "list", "--json")[1])
    result = runner.invoke(ouro, ["approve", item["patch_hash"][7:19], "--home", str(home)])
    assert result.exit_code == 0, result.output
    _, out = _run(home, "show", item["id"], "--json")
    shown = json.loads(out)
    assert shown["status"] == "implemented" and shown["review"]["reviewer"] == "ouro approve"


@pytest.mark.parametrize("kind", ["garbage", "not-utf8", "directory", "dangling-link"])
def test_an_unreadable_proposal_file_is_named_not_a_crash(home: Path, kind: str) -> None:
    # one stray file under <home>/improve/proposals/YYYY/MM/ failed every proposals
    # command: "not a proposal" without saying which file, or (bytes that are not UTF-8,
    # a directory, a dangling link) an unexpected-error crash
    month = next((home / "improve" / "proposals").glob("[0-9]*/[0-9]*"))
    bad = month / "zz-stray.md"
    if kind == "garbage":
        bad.write_text("garbage\n")
    elif kind == "not-utf8":
        bad.write_bytes(b"# Proposal: \xff\xfe\n")
    elif kind == "directory":
        bad.mkdir()
    else:
        bad.symlink_to(home / "no-such-file")
    result = runner.invoke(app, ["list", "--json", "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = json.loads(result.stdout)["error"]
    assert "zz-stray.md" in error["message"] and "unexpected" not in error["message"]


@pytest.mark.parametrize("name", ["breakers.json", "monitor.json", "notifications.json",
                                  "pulls.json"])
@pytest.mark.parametrize("content", [b"garbage", b'{"x": 1}', b"[]", b"\xff", b"[" * 100_000])
def test_a_damaged_state_file_is_named_and_kept(home: Path, name: str, content: bytes) -> None:
    # every proposals command crashed ("unexpected error: JSONDecodeError / TypeError /
    # AttributeError ... this is a bug in ouro"); the file must not be reset either (a
    # reset breakers.json would lift a halt, a reset monitor.json skip the monitoring)
    state = home / "improve" / name
    state.write_bytes(content)
    result = runner.invoke(app, ["status", "--json", "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = json.loads(result.stdout)["error"]["message"]
    assert name in message and "is unreadable" in message
    assert state.read_bytes() == content


@pytest.mark.parametrize("name", ["breakers.json", "monitor.json", "notifications.json",
                                  "pulls.json"])
def test_a_state_file_swapped_for_a_dangling_link_is_named_not_reset(
        home: Path, name: str) -> None:
    # `path.exists()` follows the link: a dangling one read as "no file yet", so the loop
    # started from empty state (a halted breaker lifted, open monitoring windows dropped)
    # and its next save replaced the link with that empty state
    state = home / "improve" / name
    state.unlink(missing_ok=True)
    state.symlink_to(home / "no-such-file")
    result = runner.invoke(app, ["status", "--json", "--home", str(home)])
    assert result.exit_code == 1, result.output
    message = json.loads(result.stdout)["error"]["message"]
    assert name in message and "unexpected" not in message
    assert state.is_symlink() and not (home / "no-such-file").exists()


def test_a_deleted_target_is_not_silently_seeded_again(home: Path) -> None:
    # with <home>/improve/target gone, the next command seeded a fresh example repository
    # (a new history): the pending proposal's base vanished, approving it failed with
    # "rev-parse failed: Needed a single revision" and paused its category for 24 h
    import shutil

    (item,) = json.loads(_run(home, "list", "--json")[1])
    target = home / "improve" / "target"
    shutil.rmtree(target)
    result = runner.invoke(app, ["approve", item["id"], "--json", "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert "missing" in json.loads(result.stdout)["error"]["message"]
    assert not target.exists()
    with Runtime.open(home) as rt:
        assert rt.pending()  # the kernel's patch is still waiting
    proposals = home / "improve" / "proposals"
    assert "**Status**: pending" in next(proposals.glob("[0-9]*/[0-9]*/*.md")).read_text()


@pytest.mark.parametrize("spoil", ["dirty", "detached"])
def test_a_checkout_not_ready_to_merge_decides_nothing(home: Path, spoil: str) -> None:
    # an edited tracked file (or a detached HEAD) in <home>/improve/target was found only
    # by the merge, after the kernel had applied the patch: the kernel said applied, the
    # proposal said failed, main had nothing, and the category was paused for 24 h
    from .fakeforge import git

    (item,) = json.loads(_run(home, "list", "--json")[1])
    target = home / "improve" / "target"
    head = git(target, "rev-parse", "HEAD").strip()
    if spoil == "dirty":
        (target / "docs" / "runbook.md").write_text("edited by hand\n")
    else:
        git(target, "checkout", "-q", "--detach", "HEAD")
    code, out = _run(home, "approve", item["id"], "--json")
    assert code == 1, out
    assert ("uncommitted changes" if spoil == "dirty" else "checked out") in out
    with Runtime.open(home) as rt:
        assert len(rt.pending()) == 1 and rt.value(f"improve/proposals/{item['id']}") is None
    assert git(target, "rev-parse", "HEAD").strip() == head
    git(target, "checkout", "-q", "-f", "main")
    code, out = _run(home, "apply", item["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "implemented"


def test_show_makes_hidden_characters_in_the_diff_visible(home: Path, tmp_path: Path) -> None:
    # the diff is the change itself and stays as it is, but `show` printed it raw: an ESC
    # sequence in an added line cleared or retitled the reviewer's terminal, a bidi override
    # showed the line in another order than git applies it
    from ouroboros.capabilities.improve.proposals.diffs import make_diff
    from ouroboros.capabilities.improve.proposals.repo import TargetRepo

    target = TargetRepo(home / "improve" / "target")
    runbook = target.read("main", "docs/runbook.md") or ""
    added = "- call \x1b]0;owned\x07\x1b[2J \u202eevil\u202c at \u200bnoon\n"
    diff = tmp_path / "change.diff"
    diff.write_text(make_diff("docs/runbook.md", runbook, runbook + added))
    code, out = _run(home, "new", "--diff", str(diff), "--title", "Runbook note", "--json")
    assert code in (0, 4), out
    pid = json.loads(out)["id"]
    assert json.loads(_run(home, "show", pid, "--json")[1])["diff"].count("\x1b") == 2
    code, out = _run(home, "show", pid)
    assert code == 0
    assert not any(ch in out for ch in "\x07\u202e\u202c\u200b")
    assert "\x1b]" not in out and "\x1b[2J" not in out
    assert "\\u202e" in out and "\\u001b" in out and "noon" in out
