"""The `ouro` command contract: verbs, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def ouro(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ouroboros", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ws"
    assert ouro("init", home=h).returncode == 0
    assert ouro("key", "new", "alice", home=h).returncode == 0
    r = ouro("trust", "grant", "alice", "--types", "prompt,config", "--targets", "agents/*",
             home=h)
    assert r.returncode == 0, r.stderr
    return h


def test_patch_new_sign_submit_state_log(home: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("You are terse.")
    env = tmp_path / "p.json"
    r = ouro("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
             str(tmp_path / "p.txt"), "--reason", "terse", "--author", "alice", "-o", str(env),
             home=home)
    assert r.returncode == 0, r.stderr
    assert ouro("patch", "sign", str(env), "--key", "alice", home=home).returncode == 0
    r = ouro("patch", "submit", str(env), "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "applied"
    r = ouro("state", "agents/a/prompt", "--json", home=home)
    assert json.loads(r.stdout) == "You are terse."
    r = ouro("log", "--kind", "PatchApplied", "--json", home=home)
    assert [e["payload"]["target"] for e in json.loads(r.stdout)][-1] == "agents/a/prompt"
    r = ouro("verify", "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    r = ouro("replay", "--json", home=home)
    state = json.loads(ouro("state", "--json", home=home).stdout)
    assert json.loads(r.stdout)["state_hash"] == state["state_hash"]


def test_rejected_submit_exits_3_and_pending_exits_4(home: Path, tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text('{"approval": []}')
    env = tmp_path / "bad.json"
    ouro("patch", "new", "--type", "config", "--target", "kernel/gates", "--value",
         str(tmp_path / "v.json"), "--reason", "x", "-o", str(env), home=home)
    ouro("patch", "sign", str(env), "--key", "alice", home=home)
    r = ouro("patch", "submit", str(env), home=home)
    assert r.returncode == 3 and "rejected" in r.stdout
    # unsigned
    env2 = tmp_path / "unsigned.json"
    (tmp_path / "c.json").write_text('{"a": 1}')
    ouro("patch", "new", "--type", "config", "--target", "agents/a/config", "--value",
         str(tmp_path / "c.json"), "--reason", "x", "-o", str(env2), home=home)
    r = ouro("patch", "submit", str(env2), home=home)
    assert r.returncode == 3 and "no signature" in r.stdout


def test_bad_input_is_one_line_with_exit_2(home: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{not json")
    before = len(json.loads(ouro("log", "--json", home=home).stdout))
    r = ouro("patch", "submit", str(tmp_path / "junk.json"), home=home)
    assert r.returncode == 2 and "envelope is not valid JSON" in r.stderr
    r = ouro("patch", "new", "--type", "nope", "--target", "a/b", "--value",
             str(tmp_path / "junk.json"), "--reason", "x", home=home)
    assert r.returncode == 2
    r = ouro("patch", "new", "--type", "config", "--target", "a/b", "--value",
             str(tmp_path / "junk.json"), "--reason", "x", home=home)
    assert r.returncode == 2 and "not valid JSON: line 1" in r.stderr
    after = len(json.loads(ouro("log", "--json", home=home).stdout))
    assert after == before  # nothing written for unparseable input


def test_missing_workspace(tmp_path: Path) -> None:
    r = ouro("state", home=tmp_path / "none")
    assert r.returncode == 2 and "no Ouroboros workspace" in r.stderr and "ouro init" in r.stderr


def test_rollback_and_breakers_cli(home: Path, tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / "c.json").write_text(json.dumps({"n": i}))
        env = tmp_path / f"c{i}.json"
        ouro("patch", "new", "--type", "config", "--target", "agents/a/config", "--value",
             str(tmp_path / "c.json"), "--reason", "x", "--author", "alice", "-o", str(env),
             home=home)
        ouro("patch", "sign", str(env), "--key", "alice", home=home)
        assert ouro("patch", "submit", str(env), home=home).returncode == 0
    seq = json.loads(ouro("log", "--kind", "PatchApplied", "--json", home=home).stdout)[-2]["seq"]
    r = ouro("rollback", "--to", str(seq), "--json", home=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(ouro("state", "agents/a/config", "--json", home=home).stdout) == {"n": 0}
    r = ouro("breakers", "--json", home=home)
    by_label = {e["label"]: e for e in json.loads(r.stdout).values()}
    assert by_label["alice"]["rejections"] == 0 and by_label["alice"]["paused_until"] is None


def test_demo_runs_offline(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ouroboros", "demo", "--home", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rejected at the audit gate" in r.stdout and "matches the earlier one" in r.stdout
    # `make demo` prints no warnings: nothing on stderr (no progress in a pipe either)
    assert r.stderr == "" and "warning" not in r.stdout.lower()
