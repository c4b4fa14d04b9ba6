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
