"""`ouro improve`: connect (and its refusals), run --once on the schedules, scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .fakeforge import git


def ouro(tmp: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OURO_HOME": str(tmp / "ws")}
    env.pop("OURO_LLM_BASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "ouroboros", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode in ok, (args, proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr
    return proc


def test_connect_run_once_and_scan(tmp_path: Path) -> None:
    ouro(tmp_path, "init")
    missing = ouro(tmp_path, "improve", "connect", str(tmp_path / "nope.git"), ok=(2,))
    assert "cannot use" in missing.stderr
    assert not (tmp_path / "ws" / "ouro.toml").exists()  # a failed connect records nothing
    ouro(tmp_path, "improve", "init-example", "deploy")
    git(tmp_path, "clone", "-q", "--bare", "deploy", "deploy.git")
    git(tmp_path, "clone", "-q", "--bare", "deploy", "other.git")
    bad_branch = ouro(tmp_path, "improve", "connect", "deploy.git", "--branch", "a..b",
                      "--json", ok=(2,))
    assert json.loads(bad_branch.stdout)["error"]["details"]["problems"][0]["file"] == "--branch"
    ouro(tmp_path, "improve", "connect", "deploy.git")
    switch = ouro(tmp_path, "improve", "connect", "other.git", ok=(2,))
    assert "--replace" in switch.stderr
    ouro(tmp_path, "improve", "connect", "other.git", "--replace")
    assert "other.git" in (tmp_path / "ws" / "ouro.toml").read_text()
    assert list((tmp_path / "ws" / "improve").glob("target.replaced-*"))

    first = json.loads(ouro(tmp_path, "improve", "run", "--once", "--json").stdout)
    assert {r["name"] for r in first["runs"]} == {"extract", "evaluate", "tick", "scan", "notify"}
    assert all(r["ok"] for r in first["runs"]), first["runs"]
    again = json.loads(ouro(tmp_path, "improve", "run", "--once", "--json").stdout)
    assert again["runs"] == []  # nothing is due right after
    scanned = json.loads(ouro(tmp_path, "improve", "scan", "--json").stdout)
    kinds = {f["kind"] for f in scanned["findings"]}
    assert kinds == {"never_used_tool"}  # the example's tools, never called here


def test_a_repository_with_a_bad_config_is_not_connected(tmp_path: Path) -> None:
    ouro(tmp_path, "init")
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "ouro.toml").write_text('[improve.schemas]\n"a.yaml" = "schemas/missing.json"\n')
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "r")
    git(tmp_path, "clone", "-q", "--bare", "r", "r.git")
    out = ouro(tmp_path, "improve", "connect", "r.git", "--json", ok=(2,))
    (problem,) = json.loads(out.stdout)["error"]["details"]["problems"]
    assert "schemas/missing.json is not in the repository" in problem["message"]
    assert problem["file"].startswith("schemas/missing.json@")
    assert not (tmp_path / "ws" / "improve" / "target").exists()
    assert not (tmp_path / "ws" / "ouro.toml").exists()


def test_run_keeps_the_schedules_until_sigterm(tmp_path: Path) -> None:
    """`ouro improve run` (no --once): every job that never ran runs at start on
    APScheduler, a second start does not run them again, SIGTERM stops it cleanly."""
    import signal
    import time

    ouro(tmp_path, "init")
    (tmp_path / "ws" / "ouro.toml").write_text('[schedules]\nscan = "off"\n')
    state = tmp_path / "ws" / "improve" / "schedule.json"
    env = {**os.environ, "OURO_HOME": str(tmp_path / "ws")}
    env.pop("OURO_LLM_BASE_URL", None)

    def finished() -> dict[str, object]:
        try:
            jobs = json.loads(state.read_text())["jobs"]
        except (FileNotFoundError, ValueError):
            return {}
        return {k: v for k, v in jobs.items() if v.get("runs")}

    proc = subprocess.Popen([sys.executable, "-m", "ouroboros", "improve", "run", "--json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(finished()) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert set(finished()) == {"extract", "evaluate", "tick", "notify"}  # scan is off
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    assert doc["stopped"] is True
    assert {j["name"]: j["ok"] for j in doc["jobs"] if j["runs"]} == {
        "extract": True, "evaluate": True, "tick": True, "notify": True}
    again = json.loads(ouro(tmp_path, "improve", "run", "--once", "--json").stdout)
    assert again["runs"] == []  # the records of the long run count


def test_connect_with_a_relative_home(tmp_path: Path) -> None:
    # `--home ws` cloned with `git -C ws/improve clone … ws/improve/target`: the clone
    # landed in ws/improve/ws/improve/target, the connect then failed (exit 2) and the
    # stray clone stayed behind
    ouro(tmp_path, "init", "--home", "ws")
    ouro(tmp_path, "improve", "init-example", "deploy")
    out = json.loads(ouro(tmp_path, "improve", "connect", "deploy", "--no-push", "--home", "ws",
                          "--json").stdout)
    assert (tmp_path / out["checkout"]).resolve() == (tmp_path / "ws" / "improve" / "target").resolve()
    assert git(tmp_path / "ws" / "improve" / "target", "rev-parse", "HEAD").strip() == out["head"]
    assert sorted(p.name for p in (tmp_path / "ws" / "improve").iterdir()) == ["target"]


def test_a_repository_with_a_deeply_nested_config_or_schema_is_not_connected(
        tmp_path: Path) -> None:
    # 50,000 nested brackets in the repository's ouro.toml or in a schema it names
    # crashed connect with RecursionError ("this is a bug in ouro") and left the clone
    for name, text in (("ouro.toml", "[improve]\nx = " + "[" * 50_000 + "]" * 50_000 + "\n"),
                       ("schemas/agents.schema.json", "[" * 50_000 + "]" * 50_000)):
        case = tmp_path / name.replace("/", "_")
        case.mkdir()
        ouro(case, "init")
        ouro(case, "improve", "init-example", "r")
        (case / "r" / name).write_text(text)
        git(case / "r", "commit", "-q", "-am", "deep")
        out = ouro(case, "improve", "connect", "r", "--no-push", "--json", ok=(2,))
        (problem,) = json.loads(out.stdout)["error"]["details"]["problems"]
        assert "nested too deeply" in problem["message"]
        assert problem["file"].startswith(f"{name}@")
        assert not (case / "ws" / "improve" / "target").exists()
        assert not (case / "ws" / "ouro.toml").exists()


def test_a_remote_or_branch_name_git_would_read_as_an_option_is_refused(tmp_path: Path) -> None:
    # --remote=-v was connected: the clone's remote was named "-v", and every later
    # `git fetch|push … <remote> …` read it as an option; a branch with a trailing
    # newline passed the name rule (`$` matches before a final newline)
    ouro(tmp_path, "init")
    ouro(tmp_path, "improve", "init-example", "deploy")
    for option, value in (("--remote", "-v"), ("--remote", "--all"), ("--branch", "main\n")):
        out = ouro(tmp_path, "improve", "connect", "deploy", "--no-push", f"{option}={value}",
                   "--json", ok=(2,))
        assert json.loads(out.stdout)["error"]["details"]["problems"][0]["file"] == option
        assert not (tmp_path / "ws" / "improve" / "target").exists()
        assert not (tmp_path / "ws" / "ouro.toml").exists()


HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
         "post-merge", "pre-merge-commit", "reference-transaction", "pre-push", "post-rewrite",
         "pre-auto-gc", "post-index-change", "fsmonitor-watchman", "pre-receive", "update",
         "post-receive", "post-update", "push-to-checkout", "pre-rebase", "applypatch-msg")


def test_a_hostile_repository_config_runs_nothing(tmp_path: Path) -> None:
    """A connected repository's own .git (hooks, core.hooksPath, core.fsmonitor, filter,
    textconv and merge drivers its .gitattributes names, include.path, core.sshCommand,
    uploadpack.packObjectsHook) is whoever handed it over: none of it may run while the loop
    connects, proposes, approves and merges (the loop works in its own clone)."""
    ouro(tmp_path, "init")
    ouro(tmp_path, "improve", "init-example", "deploy")
    repo, marks, hooks = tmp_path / "deploy", tmp_path / "marks", tmp_path / "hooks"
    marks.mkdir()
    hooks.mkdir()
    (repo / ".gitattributes").write_text("* filter=pwn diff=pwn merge=pwn\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "attributes")
    for name in HOOKS:
        for where in (hooks, repo / ".git" / "hooks"):
            (where / name).write_text(f"#!/bin/sh\ntouch '{marks}/hook-{name}'\n")
            (where / name).chmod(0o755)

    def run(what: str) -> str:
        return f"touch '{marks}/{what}'; cat"

    extra = tmp_path / "extra.gitconfig"
    extra.write_text(f'[core]\n\tfsmonitor = "{run("include-fsmonitor")}"\n')
    for key, value in (("core.hooksPath", str(hooks)), ("core.fsmonitor", run("fsmonitor")),
                       ("core.sshCommand", run("ssh")), ("include.path", str(extra)),
                       ("uploadpack.packObjectsHook", run("pack")),
                       ("filter.pwn.clean", run("clean")), ("filter.pwn.smudge", run("smudge")),
                       ("filter.pwn.process", run("process")), ("filter.pwn.required", "true"),
                       ("diff.pwn.textconv", run("textconv")), ("diff.pwn.command", run("diff")),
                       ("merge.pwn.driver", run("merge"))):
        git(repo, "config", key, value)

    ouro(tmp_path, "improve", "connect", "deploy", "--no-push")
    events = tmp_path / "events.jsonl"
    ouro(tmp_path, "telemetry", "generate", str(events), "--days", "2",
         "--fault", "web-search-timeouts")
    ouro(tmp_path, "telemetry", "ingest", str(events))
    report = json.loads(ouro(tmp_path, "telemetry", "eval", "--propose", "--json").stdout)
    (proposal,) = [p for p in report["proposals"] if p["status"] == "pending"][:1]
    done = json.loads(ouro(tmp_path, "proposals", "approve", proposal["id"], "--json").stdout)
    assert done["status"] == "implemented"
    assert sorted(p.name for p in marks.iterdir()) == []
    # the traps are live: git itself, run in that repository, springs them
    subprocess.run(["git", "-C", str(repo), "status"], capture_output=True, check=False)
    assert {"fsmonitor", "include-fsmonitor"} & {p.name for p in marks.iterdir()}
