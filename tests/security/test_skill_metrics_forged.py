"""`promote_after_uses` serves an unproven LLM-made version after N successful real calls.

The calls are counted from the version's `calls.log` and meta.json's `metrics`, files any
local process of the user can append to or rewrite. Only lines the runtime wrote (a MAC
keyed by the store's `metrics.key`, a nonce and a time past the last fold) may count; the
rest are ignored and counted as rejected, never a crash.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import SkillStore, ToolFailed
from ouroboros.capabilities.skills.evidence import SkillPolicy
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.capabilities.skills.serving import is_served_id
from ouroboros.kernel import Runtime

from .conftest import spec

# fails (non-zero exit) on 7, doubles anything else
DOUBLE = ("import json, sys\nx = json.loads(sys.stdin.read())\nif x == 7:\n    sys.exit(3)\n"
          "print(json.dumps(2 * x))\n")
TRIPLE = DOUBLE.replace("2 * x", "3 * x")


def _authored(factor: int) -> bytes:
    return json.dumps([{"input": i, "expected": factor * i, "source": "author"}
                       for i in (2, 3, 5)]).encode()


@pytest.fixture
def wstore(tmp_path: Path, runtimes: Runtimes) -> SkillStore:
    rt = Runtime.init(tmp_path / "ws")
    return open_store(rt, runtimes, policy=SkillPolicy(promote_after_uses=3))


def _llm_made(store: SkillStore, name: str = "double", source: str = DOUBLE) -> Any:
    tests = _authored(2 if source == DOUBLE else 3)
    made = spec("python", source, name=name, runtime="micropython", tests=tests)
    v = store.add(replace(made, origin="llm:hostile"))
    assert not is_served_id(store, name)
    return v


def _append(path: Path, lines: list[bytes]) -> None:
    with open(path / "calls.log", "ab") as f:
        f.write(b"".join(lines))


def _metrics(store: SkillStore, name: str = "double") -> dict[str, Any]:
    return dict(store.get(name).meta["metrics"])


def test_a_thousand_forged_success_lines_promote_nothing(wstore: SkillStore) -> None:
    v = _llm_made(wstore)
    old_format = b'{"ok": true, "ms": 1.0, "at": "2026-01-01T00:00:00+00:00"}\n'
    bad_mac = (b'{"at":"2026-01-01T00:00:00+00:00","id":"%04d","ms":1.0,"ok":true,'
               b'"t":99999999999999999999}\t' + b"0" * 64 + b"\n")
    junk = [b"\x00\xff not json\n", b"{\"ok\": true}\t\n", b"[]\tzz\n", b"\t\t\t\n",
            b'{"ok":true,"ms":"x","at":1,"t":"y","id":[]}\t' + b"a" * 64 + b"\n"]
    _append(v.path, [old_format] * 500 + [bad_mac % i for i in range(495)] + junk)
    assert not is_served_id(wstore, "double")
    m = _metrics(wstore)
    assert m["uses"] == 0 and m["rejected"] >= 1000
    wstore.run("double", 1)  # one genuine use counts, the forged ones still do not
    m = _metrics(wstore)
    assert m["uses"] == 1 and not is_served_id(wstore, "double")


def test_real_uses_still_promote(wstore: SkillStore) -> None:
    _llm_made(wstore)
    for i in range(3):
        wstore.run("double", i)
    assert is_served_id(wstore, "double")
    assert _metrics(wstore)["uses"] == 3 and _metrics(wstore)["rejected"] == 0


def test_a_genuine_line_replayed_or_copied_from_another_version_does_not_count(
    wstore: SkillStore
) -> None:
    v = _llm_made(wstore)
    w = _llm_made(wstore, "triple", TRIPLE)
    wstore.run("double", 1)
    line = (v.path / "calls.log").read_bytes()
    assert _metrics(wstore)["uses"] == 1  # folded: the log is gone
    _append(v.path, [line] * 50)  # replayed after the fold
    _append(w.path, [line] * 50)  # another version's genuine line
    assert _metrics(wstore)["uses"] == 1 and _metrics(wstore, "triple")["uses"] == 0
    wstore.run("double", 2)
    _append(v.path, [(v.path / "calls.log").read_bytes()] * 9)  # duplicated before a fold
    assert _metrics(wstore)["uses"] == 2
    assert not is_served_id(wstore, "double") and not is_served_id(wstore, "triple")


@pytest.mark.parametrize("forged", [
    {"uses": 5000, "failures": 0},
    {"uses": 5000, "failures": 0, "after": 0, "rejected": 0, "mac": "0" * 64},
])
def test_metrics_written_into_meta_json_promote_nothing(
    wstore: SkillStore, forged: dict[str, Any]
) -> None:
    v = _llm_made(wstore)
    meta = json.loads((v.path / "meta.json").read_text())
    meta["metrics"] = {**meta["metrics"], **forged}
    (v.path / "meta.json").write_text(json.dumps(meta))
    assert not is_served_id(wstore, "double")
    assert _metrics(wstore)["uses"] == 0


def test_a_failure_is_not_erased_by_resetting_the_metrics_and_replaying_successes(
    wstore: SkillStore
) -> None:
    v = _llm_made(wstore)
    wstore.run("double", 1)
    wstore.run("double", 2)
    successes = (v.path / "calls.log").read_bytes()
    with pytest.raises(ToolFailed):
        wstore.run("double", 7)
    assert _metrics(wstore)["failures"] == 1
    meta = json.loads((v.path / "meta.json").read_text())
    meta["metrics"] = {"uses": 0, "failures": 0, "p50_ms": None, "p95_ms": None,
                       "last_used": None, "recent_ms": []}  # what a new version holds
    (v.path / "meta.json").write_text(json.dumps(meta))
    _append(v.path, [successes] * 3)
    wstore.run("double", 3)
    assert not is_served_id(wstore, "double")


@pytest.mark.parametrize("planted", ["symlink", "empty", "directory"])
def test_a_key_file_planted_or_damaged_is_replaced_or_named_never_followed(
    tmp_path: Path, runtimes: Runtimes, planted: str
) -> None:
    from typer.testing import CliRunner

    from ouroboros.capabilities.skills import metrics
    from ouroboros.interfaces.cli.tool import app

    home = tmp_path / "ws"
    with Runtime.init(home) as rt:
        store = open_store(rt, runtimes)
        _llm_made(store)
        store.run("double", 1)
    key = store.root / metrics.KEY
    key.unlink()
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    if planted == "symlink":
        key.symlink_to(target)
    elif planted == "empty":
        key.write_bytes(b"")
    else:
        key.mkdir()
    metrics._KEYS.clear()  # as a new process would
    result = CliRunner().invoke(app, ["list", "--json", "--home", str(home)])
    assert target.read_bytes() == b"precious"
    assert "Traceback" not in result.output and "bug in ouro" not in result.output
    if planted == "directory":
        assert result.exit_code == 1, result.output
        assert "metrics.key" in json.loads(result.stdout)["error"]["message"]
        return
    assert result.exit_code == 0, result.output
    assert key.is_file() and not key.is_symlink() and len(key.read_bytes()) == 32
    (listed,) = json.loads(result.stdout)
    assert listed["metrics"]["uses"] == 0  # signed with the old key: starts over
