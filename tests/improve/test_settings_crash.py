"""The settings writer (`ouro improve connect` records its target in ouro.toml) SIGKILLed
at every step: ouro.toml is then still readable and names the old target or the new one
whole, never a mix (the new repository with the old branch); and what it writes reaches
the disk in order (file fsynced, renamed over, folder fsynced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ouroboros.kernel.settings import load_settings

from .fakeforge import git

# The real CLI in a child; a profile hook SIGKILLs it at the Nth C call made by the
# settings writer and the file helpers it uses. Nothing in the product knows of it.
CHILD = """
import os, runpy, signal, sys
nth, seen = int(sys.argv[1]), [0]
WRITERS = ("write_setting", "write_settings", "replace_file", "create_new", "fsync_dir")
def hook(frame, event, arg):
    if event == "c_call" and frame.f_code.co_name in WRITERS:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(hook)
sys.argv = ["ouro", *sys.argv[2:]]
runpy.run_module("ouroboros", run_name="__main__")
"""

# The same, with os.fsync and os.replace observed (each still runs): the order they
# reached the settings file and its folder in.
SPY = """
import os, runpy, stat, sys
calls = []
real_fsync, real_replace = os.fsync, os.replace
def fsync(fd):
    target = os.readlink(f"/proc/self/fd/{fd}")
    calls.append(("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync", target))
    return real_fsync(fd)
def replace(src, dst, **kw):
    calls.append(("replace", os.fspath(dst)))
    return real_replace(src, dst, **kw)
os.fsync, os.replace = fsync, replace
sys.argv = ["ouro", *sys.argv[1:]]
try:
    runpy.run_module("ouroboros", run_name="__main__")
finally:
    with open(os.environ["SPY_OUT"], "w") as out:
        out.write("\\n".join(f"{k} {t}" for k, t in calls))
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "OURO_HOME": str(tmp / "ws"), "HOME": str(tmp)}
    env.pop("OURO_LLM_BASE_URL", None)
    return env


def _ouro(tmp: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "ouroboros", *args], cwd=tmp, env=_env(tmp),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _connected(tmp: Path) -> None:
    """A workspace connected to deploy.git (main, push); other.git has a `dev` branch."""
    _ouro(tmp, "init")
    _ouro(tmp, "improve", "init-example", "deploy")
    git(tmp, "clone", "-q", "--bare", "deploy", "deploy.git")
    git(tmp, "clone", "-q", "--bare", "deploy", "other.git")
    git(tmp / "other.git", "branch", "dev", "main")
    _ouro(tmp, "improve", "connect", "deploy.git")


NEW = ["improve", "connect", "other.git", "--replace", "--branch", "dev", "--no-push"]


def _target(home: Path) -> tuple[str, str, bool]:
    t = load_settings(home, cwd=home, env={}).settings.improve.target
    return (Path(str(t.repo)).name, t.branch, t.push)


def test_a_connect_killed_while_recording_its_target_leaves_old_or_new_whole(
        tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    _connected(base)
    old = _target(base / "ws")
    assert old[0] == "deploy.git"
    killed = 0
    for nth in range(1, 120):
        run = tmp_path / f"r{nth}"
        shutil.copytree(base, run, symlinks=True)
        # the copies point at base's repositories: connect to this run's own other.git
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), *NEW], cwd=run,
                               env=_env(run), capture_output=True, text=True, timeout=300)
        if child.returncode == 0:
            assert _target(run / "ws") == ("other.git", "dev", False)
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        now = _target(run / "ws")  # still valid TOML that validates
        assert now in (old, ("other.git", "dev", False)), (nth, now)
    else:
        raise AssertionError("connect never completed")
    assert killed >= 3


def test_the_settings_file_is_fsynced_then_renamed_then_its_folder_fsynced(
        tmp_path: Path) -> None:
    _connected(tmp_path)
    out = tmp_path / "spy.txt"
    env = {**_env(tmp_path), "SPY_OUT": str(out)}
    proc = subprocess.run([sys.executable, "-c", SPY, *NEW], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    settings = str((tmp_path / "ws" / "ouro.toml").resolve())
    calls = [line for line in out.read_text().splitlines()
             if line.endswith((settings, settings + ".tmp", str((tmp_path / "ws").resolve())))]
    assert calls == [f"fsync {settings}.tmp", f"replace {settings}",
                     f"fsync-dir {(tmp_path / 'ws').resolve()}"], calls


WRITER = """
import sys
from pathlib import Path
from ouroboros.kernel.settings import write_setting
path, key, tag = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(60):
    write_setting(path, ("improve", "target", key), f"{tag}{i}")
"""


def test_two_concurrent_setting_writers_lose_neither_key(tmp_path: Path) -> None:
    path = tmp_path / "ouro.toml"
    path.write_text("# mine\n")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), key, tag],
                              stderr=subprocess.PIPE, text=True)
             for key, tag in (("branch", "a"), ("remote", "b"))]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors  # no writer lost its .tmp
    target = load_settings(tmp_path, cwd=tmp_path, env={}).settings.improve.target
    assert (target.branch, target.remote) == ("a59", "b59")  # neither overwrote the other
    assert path.read_text().startswith("# mine\n")
