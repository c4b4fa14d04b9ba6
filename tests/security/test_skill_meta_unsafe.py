"""A version's `meta.json` is read by every listing, describe, run and fold. A workspace
writer (any local process of the user) who replaces it with a FIFO, a link to a device or
to another file, a huge file or bytes that are not a JSON object must get an integrity
error naming the file from each reader, not a hang, an unbounded read or a traceback;
and nothing is written through the planted file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import SkillStore, ToolCorrupt
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime

from .conftest import cases, spec
from .plants import plant

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
DOUBLE_V2 = "import json, sys\nx = json.loads(sys.stdin.read())\nprint(json.dumps(x + x))\n"


def _add(store: SkillStore, source: str) -> Any:
    return store.add(spec("python", source, name="double", runtime="micropython",
                          tests=cases((2, 4), (3, 6))))


# this file's names for two of the shared plants (its test ids)
_NAMES = {"not_json": "torn", "not_an_object": "wrong_shape"}


def _plant(meta: Path, how: str, victim: Path) -> None:
    plant(meta, _NAMES.get(how, how), victim, b"[1, 2, 3]", huge=64 << 20)


# Each reader runs in a child with a deadline: a FIFO would block it for ever and
# /dev/zero fill its memory.
READER = """
import sys
from pathlib import Path
from ouroboros.capabilities.skills import ToolCorrupt
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime
import resource
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
rt = Runtime.open(Path(sys.argv[1]))
store = open_store(rt, Runtimes())
what, fp = sys.argv[2], sys.argv[3]
try:
    if what == "get_old":
        store.get("double", fp)
    elif what == "versions":
        store.versions("double")
    elif what == "run_old":
        store.run("double", 5, fingerprint=fp)
    elif what == "get_current":
        store.get("double")
    elif what == "run_current":
        store.run("double", 5)
except ToolCorrupt as e:
    print("CORRUPT", e)
    sys.exit(0)
print("NO ERROR")
sys.exit(3)
"""


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "link_to_victim", "huge", "not_utf8",
                                 "not_json", "not_an_object"])
def test_a_planted_meta_json_is_an_integrity_error_for_every_reader(
        tmp_path: Path, how: str) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    store = open_store(rt, Runtimes())
    old = _add(store, DOUBLE)
    current = _add(store, DOUBLE_V2)
    rt.close()
    victim = tmp_path / "victim.json"
    victim.write_text('{"precious": true}')
    targets = {"get_old": old, "versions": old, "run_old": old,
               "get_current": current, "run_current": current}
    for what, version in targets.items():
        meta = version.path / "meta.json"
        saved = meta.read_bytes() if meta.is_file() and not meta.is_symlink() else None
        _plant(meta, how, victim)
        child = subprocess.run([sys.executable, "-c", READER, str(home), what,
                                version.fingerprint], capture_output=True, text=True,
                               timeout=30)
        assert child.returncode == 0, (what, child.stdout, child.stderr[-2000:])
        assert child.stdout.startswith("CORRUPT") and "meta.json" in child.stdout, child.stdout
        assert "Traceback" not in child.stderr
        assert victim.read_text() == '{"precious": true}'  # never written through
        meta.unlink()
        assert saved is not None
        meta.write_bytes(saved)  # restored: the next reader meets only its own plant
    fresh = open_store(Runtime.open(home), Runtimes())
    assert fresh.run("double", 5).output == 10  # the genuine files still work


def test_the_cli_names_the_planted_file_and_exits_1(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    store = open_store(rt, Runtimes())
    version = _add(store, DOUBLE)
    rt.close()
    meta = version.path / "meta.json"
    _plant(meta, "fifo", tmp_path / "none")
    child = subprocess.run([sys.executable, "-m", "ouroboros", "tool", "run", "double", "--input", "5",
                            "--home", str(home), "--json"], capture_output=True, text=True,
                           timeout=30)
    assert child.returncode == 1, (child.stdout, child.stderr)
    assert "meta.json" in child.stdout and "Traceback" not in child.stderr
    with pytest.raises(ToolCorrupt):
        open_store(Runtime.open(home), Runtimes()).get("double")
