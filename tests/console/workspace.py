"""A workspace with something on every console page, made with the real capabilities.

- the kernel: alice may sign config and prompt patches on ``agents/*``; patches to
  ``agents/guarded/*`` wait for approval. Three are pending: a config change, a prompt
  diff whose reasoning is hostile (script, event handler, a bidi override), and one kept
  for the CSRF attack (it must stay pending);
- tools: ``sum_ints`` in two versions (lineage), ``xss_tool`` with a hostile description;
- FLUX: the classic engine evolving ``sum2x`` (the `ouro demo` run), a routing patch;
- proposals: a benign one to approve, one whose markdown is hostile, to reject;
- telemetry: two days of synthetic events with a timeout cluster and an error spike
  whose message is hostile.

Hostile strings set ``window.pwned`` (or call ``alert``) if they ever run; the browser
tests assert they never do and that the text is shown as text.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ouroboros.kernel import Runtime

SCRIPT = "<script>window.pwned='script'</script>"
IMG = "<img src=x onerror=\"window.pwned='img'\">"
SVG = "<svg onload=\"window.pwned='svg'\"></svg>"
QUOTE_BREAK = "\"'><b onmouseover=\"window.pwned='attr'\">x</b>"
RLO = "\u202e"
XSS = f"{SCRIPT}{IMG}{SVG}{QUOTE_BREAK}"
MARKDOWN_XSS = (f"Plain **bold** text.\n\n{SCRIPT}\n\n[click me](javascript:window.pwned='link')"
                f" ![i](x.png) <a href=\"javascript:alert(1)\">raw</a> {IMG}\n\n"
                "```html\n<script>window.pwned='fence'</script>\n```\n")


@dataclass
class Workspace:
    home: Path
    pending: dict[str, str] = field(default_factory=dict)  # role → patch hash
    proposals: dict[str, str] = field(default_factory=dict)  # role → proposal id


def _trust_alice(rt: Runtime) -> None:
    rt.keyring.new("alice")
    kid, public = rt.keyring.public("alice")
    policy = rt.value("kernel/trust")
    policy["keys"][kid] = {"name": "alice", "public": public}
    policy["delegations"].append({"name": "alice", "keys": [kid], "threshold": 1,
                                  "types": ["prompt", "config"], "targets": ["agents/*"],
                                  "rights": []})
    out = rt.submit(rt.sign(rt.propose("trust", "kernel/trust", value=policy,
                                       author="operator", reasoning="alice edits agents"),
                            "root"))
    assert out.status == "applied", out


def _submit(rt: Runtime, type_: str, target: str, reasoning: str, **op: object) -> str:
    out = rt.submit(rt.sign(rt.propose(type_, target, reasoning=reasoning, author="alice",
                                       **op), "alice"))
    return out.patch_hash if out.status == "pending" else _fail(out)


def _fail(out: object) -> str:
    raise AssertionError(f"expected a pending patch, got {out}")


def kernel(rt: Runtime, ws: Workspace) -> None:
    _trust_alice(rt)
    for target, value in (("agents/guarded/limits", {"max_tokens": 1024, "temperature": 0.2}),
                          ("agents/guarded/prompt", "You are a careful assistant.\n"
                                                    "Answer in English.\n")):
        kind = "config" if isinstance(value, dict) else "prompt"
        out = rt.submit(rt.sign(rt.propose(kind, target, value=value, author="alice",
                                           reasoning="first version"), "alice"))
        assert out.status == "applied", out
    gates = rt.value("kernel/gates")
    gates["approval"].append({"types": ["config", "prompt"], "targets": ["agents/guarded/*"]})
    out = rt.submit(rt.sign(rt.propose("gates", "kernel/gates", value=gates, author="operator",
                                       reasoning="a person approves guarded agents"), "root"))
    assert out.status == "applied", out
    ws.pending["config"] = _submit(
        rt, "config", "agents/guarded/limits", "allow longer answers for the support queue",
        value={"max_tokens": 2048, "temperature": 0.2})
    ws.pending["hostile"] = _submit(
        rt, "prompt", "agents/guarded/prompt",
        f"friendlier tone {XSS} {RLO}evorppa esaelp{RLO} end",
        diff="@@ -1,2 +1,2 @@\n-You are a careful assistant.\n+You are a careful, friendly "
             f"assistant. {SCRIPT}\n Answer in English.\n")
    ws.pending["csrf"] = _submit(rt, "config", "agents/guarded/csrf", "kept for the CSRF test",
                                 value={"enabled": True})


def tools(rt: Runtime, tmp: Path) -> None:
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.capabilities.skills.starter import starter_dirs

    store = open_store(rt)
    source = next(d for d in starter_dirs() if d.name == "sum_ints")
    store.add_dir(source)
    child = tmp / "sum_ints_v2"
    shutil.copytree(source, child)
    meta = json.loads((child / "meta.json").read_text())
    meta["description"] += " Second version: one more test case."
    (child / "meta.json").write_text(json.dumps(meta))
    cases = json.loads((child / "tests" / "cases.json").read_text())
    cases.append({"name": "many", "input": [1, 1, 1, 1, 1, 1, 1], "expected": 7})
    (child / "tests" / "cases.json").write_text(json.dumps(cases))
    store.add_dir(child)
    hostile = tmp / "xss_tool"
    shutil.copytree(source, hostile)
    meta = json.loads((hostile / "meta.json").read_text())
    meta.update(name="xss_tool", description=f"Sums integers. {XSS} {RLO}txet desrever")
    (hostile / "meta.json").write_text(json.dumps(meta))
    # `tool add` now refuses a bidi override in a new description; a version stored by an
    # earlier release keeps its own, so the console must still show it escaped: add this
    # one as that release did (the add-time check off for this call only)
    from unittest import mock

    from ouroboros.capabilities.skills import store as store_module

    with mock.patch.object(store_module, "hidden_character", lambda _: None):
        store.add_dir(hostile)


def flux(rt: Runtime, scratch: Path) -> None:
    from ouroboros.interfaces.cli.flux_evolve import demo

    # a folder that cannot exist (another process may have made /nonexistent): the
    # built-in sum2x example
    demo(rt, lambda _: None, scratch / "no-examples-here")


def proposals(rt: Runtime, ws: Workspace) -> None:
    from ouroboros.capabilities.improve.proposals.diffs import make_diff
    from ouroboros.capabilities.improve.proposals.planner import Draft
    from ouroboros.capabilities.improve.registrar import loop_of

    loop = loop_of(rt)
    for role, title, prose in (
            ("benign", "Document retries", "Retries are not documented."),
            ("hostile", f"Hostile {SCRIPT} title", MARKDOWN_XSS)):
        runbook = loop.repo.read("main", "docs/runbook.md") or ""
        out = loop.propose(Draft(
            key=title, title=title, category="enhancement", severity="low", problem=prose,
            evidence=(f"evidence {IMG}", "calls: 12"), root_cause=prose,
            solution="Add a line to the runbook.", risk=f"low {SVG}",
            diff=make_diff("docs/runbook.md", runbook, runbook + f"- {role}: retry.\n"),
            affected_files=("docs/runbook.md",)))
        assert out is not None and out.proposal.status == "pending", out
        ws.proposals[role] = out.proposal.id


def telemetry(home: Path, tmp: Path) -> None:
    from ouroboros.capabilities.improve.intake import synthetic
    from ouroboros.capabilities.improve.intake.collectors import ingest
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

    now = datetime.now(UTC)
    events = tmp / "events.jsonl"
    synthetic.write_jsonl(synthetic.generate(
        now - timedelta(days=2), now, events_per_hour=150, seed=3,
        faults=[synthetic.Timeouts(start=now - timedelta(hours=6), end=now, rate=0.7),
                synthetic.ErrorSpike(start=now - timedelta(hours=5), end=now, rate=0.6,
                                     tool="db_query", error_code="UPSTREAM_UNAVAILABLE",
                                     message=f"upstream said {XSS}")]), events)
    ingest([events], TelemetryStore(home))


def build(home: Path) -> Workspace:
    """The whole workspace (about 5 s on one core)."""
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)
    from ouroboros.interfaces.cli.output import open_runtime

    Runtime.init(home).close()
    ws = Workspace(home)
    with open_runtime(home) as rt:
        kernel(rt, ws)
        tools(rt, home.parent)
        flux(rt, home.parent)
        proposals(rt, ws)
    telemetry(home, home.parent)
    return ws
