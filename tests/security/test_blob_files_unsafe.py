"""Blobs are read back by content hash (a tool version's files when its folder must be
installed again, a proposal's diff, a gate re-checking a version). A workspace writer (any
local process of the user) who puts a FIFO, a link to a device or to another file or a
huge file under a blob's name must get the bad-blob error every caller already handles,
not a hang or an unbounded read; and `put` must not take a planted entry for the blob."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime
from ouroboros.storage.blobs import BlobStore

from .conftest import cases, spec
from .plants import cap_memory, plant

PLANTS = ["fifo", "dev_zero", "link_to_victim", "huge", "directory"]
DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"


GET = """
import sys
from pathlib import Path
from ouroboros.storage.blobs import BlobStore
try:
    BlobStore(Path(sys.argv[1])).get(sys.argv[2])
except ValueError as e:
    print("BAD", e)
    sys.exit(0)
print("READ")
sys.exit(3)
"""


@pytest.mark.parametrize("how", PLANTS)
def test_a_planted_blob_is_a_bad_blob_not_a_hang(tmp_path: Path, how: str) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = b"the genuine bytes\n"
    digest = blobs.put(data)
    path = blobs._path(digest)
    victim = tmp_path / "victim"
    victim.write_bytes(data)  # the right bytes, behind a link
    plant(path, how, victim, huge=3 << 30)  # past get's 1 GiB bound
    child = subprocess.run([sys.executable, "-c", GET, str(blobs.root), digest],
                           capture_output=True, text=True, timeout=30, preexec_fn=cap_memory)
    assert child.returncode == 0, (child.stdout, child.stderr[-2000:])
    assert child.stdout.startswith("BAD") and digest in child.stdout, child.stdout
    assert victim.read_bytes() == data
    if how != "directory":  # put replaces a planted entry by the blob, never through it
        assert blobs.put(data) == digest and not path.is_symlink() and path.is_file()
        assert blobs.get(digest) == data and victim.read_bytes() == data


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "huge"])
def test_a_version_reinstalled_from_a_planted_blob_is_corrupt_exit_1(
        tmp_path: Path, how: str) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    store = open_store(rt, Runtimes())
    version = store.add(spec("python", DOUBLE, name="double", runtime="micropython",
                             tests=cases((2, 4))))
    digest = version.meta["files"]["src/main.py"]
    rt.close()
    shutil.rmtree(version.path)  # the folder goes: the next reader installs it from blobs
    plant(home / "blobs" / digest[7:9] / digest[9:], how, huge=3 << 30)
    child = subprocess.run([sys.executable, "-m", "ouroboros", "tool", "run", "double",
                            "--input", "5", "--home", str(home), "--json"],
                           capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
    assert child.returncode == 1, (child.stdout, child.stderr[-2000:])
    assert "blob" in child.stdout and "Traceback" not in child.stderr, child.stdout
    assert not version.path.exists()  # nothing half-installed
