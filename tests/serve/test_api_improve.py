"""Proposals and findings over real HTTP, and the contract: the API answers what the CLI's
``--json`` prints for the same workspace (one capability function behind both)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from ouroboros.capabilities.improve.intake import synthetic
from ouroboros.capabilities.improve.intake.collectors import ingest
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.improve.proposals.diffs import make_diff
from ouroboros.capabilities.improve.proposals.planner import Draft
from ouroboros.capabilities.improve.registrar import loop_of
from ouroboros.interfaces import schemas
from ouroboros.interfaces.cli.output import open_runtime

from .conftest import new_workspace
from .live import LiveServer, start


def propose(home: Path, title: str) -> str:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    with open_runtime(home) as rt:
        loop = loop_of(rt)
        runbook = loop.repo.read("main", "docs/runbook.md") or ""
        out = loop.propose(Draft(
            key=title, title=title, category="enhancement", severity="low", problem="-",
            evidence=(), root_cause="-", solution="-", risk="-",
            diff=make_diff("docs/runbook.md", runbook, runbook + f"- {title}.\n"),
            affected_files=("docs/runbook.md",)))
        assert out is not None and out.proposal.status == "pending", out
        return out.proposal.id


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("improve")
    home = new_workspace(tmp / "ws")
    now = datetime.now(UTC)
    events = tmp / "events.jsonl"
    synthetic.write_jsonl(synthetic.generate(
        now - timedelta(days=2), now, events_per_hour=200, seed=3,
        faults=[synthetic.Timeouts(start=now - timedelta(hours=6), end=now, rate=0.7)]), events)
    ingest([events], TelemetryStore(home))
    propose(home, "Document retries")
    propose(home, "Document timeouts")
    server = start(home, "--no-scheduler")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def ouro(home: Path, *args: str) -> Any:
    r = subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home), "--json"],
                       capture_output=True, text=True, timeout=300)
    return json.loads(r.stdout)


def test_list_show_approve_reject(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as reader:
        listed = reader.get("/api/v1/proposals").json()
        assert sorted(p["title"] for p in listed) == ["Document retries", "Document timeouts"]
        assert all("diff" not in p for p in listed)
        first = next(p for p in listed if p["title"] == "Document retries")
        shown = reader.get(f"/api/v1/proposals/{first['id']}").json()
        assert "+- Document retries." in shown["diff"]
        assert reader.post(f"/api/v1/proposals/{first['id']}/approve", json={}).status_code == 403
    second = next(p for p in listed if p["title"] == "Document timeouts")
    with live.client(live.token("alice", "approve", "root")) as alice:
        r = alice.post(f"/api/v1/proposals/{first['id']}/approve", json={"notes": "ok"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "implemented"
        assert r.json()["review"]["reviewer"] == "alice"
        r = alice.post(f"/api/v1/proposals/{second['id']}/reject", json={"reason": "no"})
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        again = alice.post(f"/api/v1/proposals/{second['id']}/approve", json={})
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        assert alice.get("/api/v1/proposals", params={"status": "implemented"}).json()[0][
            "id"] == first["id"]
        assert alice.post(f"/api/v1/proposals/{second['id']}/reject",
                          json={"reason": ""}).status_code == 422


@pytest.mark.parametrize("path", ["/api/v1/proposals/ffffffff", "/api/v1/proposals/../x",
                                  "/api/v1/proposals/ZZ", "/api/v1/proposals?status=weird"])
def test_unknown_and_malformed_proposals_are_4xx(live: LiveServer, path: str) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert "error" in r.json()


def test_findings_name_the_failing_tool(live: LiveServer) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.get("/api/v1/telemetry/findings")
        assert r.status_code == 200
        assert "web_search" in {f["tool"] for f in r.json()["findings"]}
        assert c.get("/api/v1/telemetry/findings",
                     params={"window_hours": 0}).status_code == 422
        assert c.get("/api/v1/telemetry/findings", params={"now": "yesterday"}).status_code == 422


@pytest.mark.parametrize("now", ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                                 "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z"])
def test_a_time_at_the_calendars_edge_is_422_not_a_crash(live: LiveServer, now: str) -> None:
    """As `ouro telemetry eval --now`: a time outside the years 1971 to 9000 is refused
    (the window before 0001-01-01 does not exist; it was an OverflowError and a 500)."""
    with live.client(live.token("reader", "read")) as c:
        r = c.get("/api/v1/telemetry/findings", params={"now": now})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"
        assert "outside the years 1971 to 9000" in r.json()["error"]["message"]
        assert c.get("/api/v1/telemetry/findings").status_code == 200  # still serving


def check(model: Any, data: Any) -> None:
    TypeAdapter(model).validate_python(data)


def test_the_api_answers_what_the_cli_prints(live: LiveServer) -> None:
    """The same workspace through `ouro … --json` and the API: the same data and shapes."""
    with live.client(live.token("reader", "read")) as c:
        def get(path: str, **params: Any) -> Any:
            r = c.get(path, params=params)
            assert r.status_code == 200, r.text
            return r.json()

        cli_state, api_state = ouro(live.home, "state"), get("/api/v1/state")
        check(schemas.StateSummary, cli_state)
        assert api_state["targets"] == cli_state["targets"]
        assert api_state["state_hash"] == cli_state["state_hash"]
        cli_log = ouro(live.home, "log")
        check(list[schemas.LedgerEvent], cli_log)
        assert get("/api/v1/log", limit=1000) == cli_log[:1000]
        check(list[schemas.PendingPatch], ouro(live.home, "pending"))
        assert get("/api/v1/pending") == ouro(live.home, "pending")
        verify = ouro(live.home, "verify")
        check(schemas.VerifyResult, verify)
        assert get("/api/v1/verify")["head"] == verify["head"]
        proposals = ouro(live.home, "proposals", "list", "--all")
        check(list[schemas.Proposal], proposals)
        assert get("/api/v1/proposals", all="true") == proposals
        shown = ouro(live.home, "proposals", "show", proposals[0]["id"])
        assert get(f"/api/v1/proposals/{proposals[0]['id']}") == shown
        now = max(e["timestamp"] for e in TelemetryStore(live.home).events())
        findings = ouro(live.home, "telemetry", "eval", "--now", now)
        check(schemas.Findings, findings)
        assert findings["findings"]
        assert get("/api/v1/telemetry/findings", now=now)["findings"] == findings["findings"]


def test_every_shape_is_a_pydantic_model_in_the_openapi_schema(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as c:
        components = c.get("/openapi.json").json()["components"]["schemas"]
    for name, model in vars(schemas).items():
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == \
                schemas.__name__ and name not in ("Shape", "Signature", "ToolMetrics",
                                                  "SearchHit", "Finding", "Envelope"):
            assert name in components, name
