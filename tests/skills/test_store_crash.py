"""`SkillStore.add` SIGKILLed while it stages a version: the stage left in
``tools/.staging`` is removed by the next add (a live add's stage, locked, is not), the
killed version is either whole or absent, and the next add works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ouroboros.capabilities.skills import SkillStore, ToolSpec
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.storage.files import scratch_dir

from .conftest import SpecFactory

# A child that adds one tool; a profile hook SIGKILLs it at the Nth C call made while it
# stages (in `_commit` or the stage's helpers). Nothing in the product knows of it.
CHILD = """
import os, signal, sys
from pathlib import Path
from ouroboros.capabilities.skills import SkillStore, ToolSpec
from ouroboros.capabilities.skills.runtimes import Runtimes
nth, seen = int(sys.argv[1]), [0]
def hook(frame, event, arg):
    code = frame.f_code
    if event == "c_call" and code.co_name in ("_commit", "scratch_dir", "write_json") :
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
spec = ToolSpec(name="echo", description="echo its input", language="python",
                files={"src/main.py": b"import sys\\nprint(sys.stdin.read())\\n",
                       "tests/cases.json": b'[{"input": 1, "expected": 1}]'},
                runtime="micropython")
store = SkillStore(Path(sys.argv[2]), runtimes=Runtimes())
sys.setprofile(hook)
store.add(spec)
"""


def _other(make_spec: SpecFactory) -> ToolSpec:
    return make_spec(name="other", source="import sys\nprint(sys.stdin.read())\n# other\n")


def test_an_add_killed_while_staging_leaves_nothing_the_next_add_keeps(
        tmp_path: Path, runtimes: Runtimes, make_spec: SpecFactory) -> None:
    killed, left = 0, 0
    for nth in range(1, 40):
        root = tmp_path / f"s{nth}"
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), str(root)],
                               capture_output=True, text=True, timeout=300)
        if child.returncode == 0:
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        staging = root / "tools" / ".staging"
        left += bool(staging.is_dir() and os.listdir(staging))
        store = SkillStore(root, runtimes=runtimes)
        store.add(_other(make_spec))  # the next run
        assert os.listdir(staging) == [], nth  # the dead add's stage is gone
        echo = store.tools_dir / "echo"
        if (echo / "HEAD").exists():  # whole, or not there at all
            assert store.get("echo").meta["tests"]["passed"] == 1
            assert store.test("echo").passed
        version = store.add(make_spec())  # and the killed tool can be added
        assert store.get("echo").fingerprint == version.fingerprint
    else:
        raise AssertionError("add never completed")
    assert killed >= 3 and left >= 2  # it really died while a stage was on disk


def test_the_next_add_leaves_a_live_add_s_stage_alone(
        tmp_path: Path, runtimes: Runtimes, make_spec: SpecFactory) -> None:
    store = SkillStore(tmp_path / "s", runtimes=runtimes)
    staging = store.tools_dir / ".staging"
    with scratch_dir(staging, "echo-") as live:  # as a concurrent add holds its stage
        (live / "meta.json").write_text("{}")
        store.add(_other(make_spec))
        assert (live / "meta.json").exists()
    assert os.listdir(staging) == []


# A child that opens the workspace and asks for the tool's current version: its folder is
# gone, so the `skill` effect installs it again from the blobs; SIGKILLed at the Nth C call
# of `install` or its scratch folder.
INSTALL = """
import os, signal, sys
from pathlib import Path
from ouroboros.capabilities.skills.governance import current_version, open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime
nth, seen = int(sys.argv[1]), [0]
def hook(frame, event, arg):
    if event == "c_call" and frame.f_code.co_name in ("install", "scratch_dir"):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
rt = Runtime.open(Path(sys.argv[2]))
store = open_store(rt, Runtimes())
sys.setprofile(hook)
current_version(rt, store.root, "echo")
"""


def test_an_install_killed_midway_is_never_listed_as_a_version(
        tmp_path: Path, runtimes: Runtimes, make_spec: SpecFactory) -> None:
    import shutil

    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.kernel import Runtime

    base = tmp_path / "base"
    rt = Runtime.init(base)
    fingerprint = open_store(rt, runtimes).add(make_spec()).fingerprint
    rt.close()
    killed = 0
    for nth in range(1, 40):
        home = tmp_path / f"ws{nth}"
        shutil.copytree(base, home, symlinks=True)
        store_root = open_store(Runtime.open(home), runtimes).root
        versions = store_root / "tools" / "echo" / "versions"
        shutil.rmtree(versions / fingerprint)  # lost: the effect restores it from blobs
        child = subprocess.run([sys.executable, "-c", INSTALL, str(nth), str(home)],
                               capture_output=True, text=True, timeout=300)
        if child.returncode == 0:
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        rt = Runtime.open(home)
        store = open_store(rt, runtimes)
        found = [v.fingerprint for v in store.versions("echo")]  # no half-install in it
        assert found in ([], [fingerprint]), nth
        assert store.run("echo", 7).output == 7  # the next use installs it
        assert [v.fingerprint for v in store.versions("echo")] == [fingerprint]
        assert sorted(os.listdir(versions)) == [fingerprint]  # the leftover was swept
        rt.close()
    else:
        raise AssertionError("install never completed")
    assert killed >= 3
