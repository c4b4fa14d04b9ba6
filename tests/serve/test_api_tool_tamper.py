"""A version's folder edited on disk, seen over real HTTP: an integrity problem, not a bug."""

from __future__ import annotations

import json
from pathlib import Path

from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.output import open_runtime

from .conftest import new_workspace
from .live import start


def test_a_tampered_meta_json_is_unlisted_and_a_tool_corrupt_problem_by_name(
        tmp_path: Path) -> None:
    home = new_workspace(tmp_path / "ws")
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    with open_runtime(home) as rt:
        v = open_store(rt).add_dir(next(d for d in starter_dirs() if d.name == "sum_ints"))
    meta = json.loads((v.path / "meta.json").read_text())
    meta["evidence"]["independent"] = 99
    (v.path / "meta.json").write_text(json.dumps(meta))
    server = start(home, "--no-scheduler")
    try:
        with server.client(server.token("agent", "submit")) as c:
            listed = c.get("/api/v1/tools")
            assert listed.status_code == 200 and listed.json() == [], listed.text
            for method, url, body in (("GET", "/api/v1/tools/sum_ints", None),
                                      ("POST", "/api/v1/tools/sum_ints/run", {"input": [1, 2]})):
                r = c.request(method, url, json=body)
                assert r.status_code == 500, (url, r.text)
                problem = r.json()["error"]
                assert problem["code"] == "tool_corrupt", (url, problem)
                assert "sum_ints@" in problem["message"]
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err


def test_running_a_rolled_back_version_is_a_409_naming_the_rollback(tmp_path: Path) -> None:
    import shutil

    home = new_workspace(tmp_path / "ws")
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    starter = next(d for d in starter_dirs() if d.name == "sum_ints")
    second = tmp_path / "sum_ints"
    shutil.copytree(starter, second)
    meta = json.loads((second / "meta.json").read_text())
    meta["description"] += " (second version)"
    (second / "meta.json").write_text(json.dumps(meta))
    with open_runtime(home) as rt:
        store = open_store(rt)
        v1 = store.add_dir(starter)
        v2 = store.add_dir(second)
        rt.rollback(patch=rt.log(kind="PatchApplied")[-1].payload["patch_hash"])
        assert rt.value("skills/sum_ints")["fingerprint"] == v1.fingerprint
    server = start(home, "--no-scheduler")
    try:
        with server.client(server.token("agent", "submit")) as c:
            r = c.post("/api/v1/tools/sum_ints/run", json={"input": [1, 2],
                                                          "version": v2.fingerprint})
            assert r.status_code == 409, r.text
            problem = r.json()["error"]
            assert problem["code"] == "rolled_back", problem
            assert v2.fingerprint in problem["message"] and "rolled back" in problem["message"]
            ok = c.post("/api/v1/tools/sum_ints/run", json={"input": [1, 2],
                                                           "version": v1.fingerprint})
            assert ok.status_code == 200 and ok.json()["output"] == 3, ok.text
            shown = c.get(f"/api/v1/tools/sum_ints?version={v2.fingerprint}")
            assert shown.status_code == 200, shown.text
            assert shown.json()["status"] == "rolled_back", shown.json()
            assert "ledger seq" in shown.json()["rolled_back"], shown.json()
            current = c.get("/api/v1/tools/sum_ints").json()
            assert current["status"] != "rolled_back" and current["rolled_back"] is None
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err
