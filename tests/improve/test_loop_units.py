"""Pure parts of the loop: proposal markdown, policy rules, YAML edits, monitor verdicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.improve.proposals.breakers import Breakers
from ouroboros.capabilities.improve.proposals.diffs import (
    DiffError,
    FileChange,
    make_diff,
    parse_diff,
)
from ouroboros.capabilities.improve.proposals.monitor import Monitor, Tally, is_spike
from ouroboros.capabilities.improve.proposals.policy import PolicyConfig, check_policy, grants
from ouroboros.capabilities.improve.proposals.proposal import (
    Proposal,
    ProposalError,
    Review,
    parse,
    render,
    render_index,
)
from ouroboros.capabilities.improve.proposals.repo import example_deployment
from ouroboros.capabilities.improve.proposals.store import ProposalStore
from ouroboros.capabilities.improve.proposals.yamledit import (
    EditError,
    append_to_block,
    get,
    set_scalar,
)

AT = datetime(2026, 1, 10, 2, 6, tzinfo=UTC)
AGENTS = (example_deployment() / "agents.yaml").read_text()


def _proposal(**kw: object) -> Proposal:
    base = Proposal(
        id="a1b2c3d4", title="Increase web timeout", created=AT, category="bugfix",
        severity="medium", problem="web_search times out.", evidence=("8 timeouts in 24 h",),
        root_cause="Timeout too low.", solution="Raise it.",
        diff=make_diff("agents.yaml", "a: 1\n", "a: 2\n"), affected_files=("agents.yaml",),
        risk="Slower failures.", base_commit="0" * 40,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n#*`|<>-\x00\x85\u2028\u2029",
                              exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                max_size=40).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(title=_text, problem=_text, evidence=st.lists(_text, max_size=4), notes=_text,
       status=st.sampled_from(["pending", "approved", "rejected", "implemented"]),
       category=st.sampled_from(["bugfix", "optimization", "enhancement"]),
       log=st.lists(_text, max_size=3))
def test_markdown_round_trips(title: str, problem: str, evidence: list[str], notes: str,
                              status: str, category: str, log: list[str]) -> None:
    p = _proposal(title=title, problem=problem, evidence=tuple(evidence), status=status,
                  category=category, log=tuple(log),
                  review=Review("alice", AT, "approved", notes))
    assert parse(render(p)) == p


def test_markdown_has_the_seed_format() -> None:
    md = render(_proposal())
    for needle in ("# Proposal: Increase web timeout", "**ID**: a1b2c3d4", "**Status**: pending",
                   "**Category**: bugfix", "**Severity**: medium", "**Author**: EvalAgent",
                   "## Problem Statement", "## Evidence", "## Root Cause Analysis",
                   "## Proposed Solution", "## Unified Diff", "```diff", "## Affected Files",
                   "## Risk Assessment", "## Rollback Plan", "## Validation Checklist",
                   "- [ ] yamllint passes", "## Review", "**Reviewed by**", "## Implementation Log"):
        assert needle in md
    assert _proposal().relpath == "2026/01/a1b2c3d4-increase-web-timeout.md"


def test_each_category_uses_its_template() -> None:
    assert "<!-- optimization:" in render(_proposal(category="optimization"))
    assert "<!-- enhancement:" in render(_proposal(category="enhancement"))


def test_parse_rejects_non_proposals() -> None:
    with pytest.raises(ProposalError, match="not a proposal"):
        parse("# Hello\n")
    with pytest.raises(ProposalError, match="bad status"):
        parse(render(_proposal()).replace("**Status**: pending", "**Status**: merged"))


@pytest.mark.parametrize(("frm", "to", "ok"), [
    ("pending", "approved", True), ("pending", "rejected", True), ("approved", "implemented", True),
    ("implemented", "reverted", True), ("pending", "implemented", False),
    ("rejected", "approved", False), ("reverted", "implemented", False),
    ("approved", "pending", False),
])
def test_transitions(frm: str, to: str, ok: bool) -> None:
    p = _proposal(status=frm)
    if ok:
        assert p.transition(to).status == to
    else:
        with pytest.raises(ProposalError, match=f"cannot become {to}"):
            p.transition(to)


def test_store_finds_by_prefix_and_refuses_ambiguity(tmp_path: Path) -> None:
    store = ProposalStore.init(tmp_path / "p")
    assert (tmp_path / "p" / "templates" / "bugfix.md").exists()
    store.save(_proposal(id="abc111"), "one")
    store.save(_proposal(id="abc222", title="Other"), "two")
    assert store.get("abc1").id == "abc111"
    with pytest.raises(ProposalError, match="ambiguous"):
        store.get("abc")
    with pytest.raises(ProposalError, match="no proposal 'zz'"):
        store.get("zz")
    index = (tmp_path / "p" / "index.md").read_text()
    assert index == render_index(store.all()) and "pending: 2" in index


# -- policy -------------------------------------------------------------------------

_forbidden = st.sampled_from([
    "SYSTEM_CONTRACT.md", ".env", ".env.production", "docker-compose.yml", "tools-gateway/main.py",
    "tools-gateway/actions.yaml", "agents/provision.py", "tests/test_x.py", "app/tests/t.py",
    "conftest.py", "policy/rules.rego", "src/ouroboros/kernel/ledger.py",
    "src/ouroboros/capabilities/improve/proposals/policy.py", "schemas/agents.schema.json",
    ".github/workflows/ci.yml", "scripts/policy_check.py", "ledger.db",
    "telemetry/sanitizer.py", "detectors/secrets.yaml", "lib/pii_detector.py",
])


@settings(deadline=None)
@given(path=_forbidden, old=st.booleans())
def test_every_forbidden_path_is_caught_whatever_the_change(path: str, old: bool) -> None:
    change = FileChange(path if old else None, path, ("x",), ())
    reasons = check_policy([change], lambda p: None, lambda p: "x", PolicyConfig())
    assert reasons, path


def test_renaming_a_forbidden_file_away_is_caught() -> None:
    change = FileChange("SYSTEM_CONTRACT.md", "docs/contract.md", (), ())
    assert any("SYSTEM_CONTRACT.md" in r for r in
               check_policy([change], lambda p: "", lambda p: "", PolicyConfig()))


def test_ordinary_docs_and_prompts_pass() -> None:
    new = AGENTS.replace("cite your sources.", "cite your sources carefully.")
    changes = parse_diff(make_diff("agents.yaml", AGENTS, new))
    assert check_policy(changes, lambda p: AGENTS, lambda p: new) == []


_names = st.text("abcdefghij_", min_size=1, max_size=6)


@settings(deadline=None)
@given(agent=st.sampled_from(["ResearchAgent", "CodeAgent", "OpsAgent", "EvalAgent"]),
       ext=_names)
def test_any_granted_extension_is_caught(agent: str, ext: str) -> None:
    doc = yaml.safe_load(AGENTS)
    before = set(doc["agents"][agent].get("extensions", []))
    doc["agents"][agent]["extensions"] = sorted(before | {ext})
    new = yaml.safe_dump(doc)
    changes = [FileChange("agents.yaml", "agents.yaml", ("x",), ())]
    reasons = check_policy(changes, lambda p: AGENTS, lambda p: new)
    assert (ext in before) == (not any(f"granted new extensions: {ext}" in r for r in reasons))


def test_removing_an_extension_is_allowed() -> None:
    new = AGENTS.replace("extensions: [web_search, fetch_page]", "extensions: [web_search]")
    changes = parse_diff(make_diff("agents.yaml", AGENTS, new))
    assert check_policy(changes, lambda p: AGENTS, lambda p: new) == []


def test_grants_cover_lists_and_mappings() -> None:
    found = grants({"tools": {"a": {}}, "agents": {"X": {"extensions": ["e"]}}})
    assert found == {(("tools",), "a"), (("agents", "X", "extensions"), "e")}


@pytest.mark.parametrize("url", ["https://evil.example/x", "http://user:pw@evil.example",
                                 "ftp://files.evil.example/a", "https://api.openai.com.evil.example"])
def test_new_urls_outside_the_allow_list_are_caught(url: str) -> None:
    changes = [FileChange("docs/a.md", "docs/a.md", (f"see {url}",), ())]
    assert any("new external URL" in r for r in check_policy(changes, lambda p: "", lambda p: ""))


def test_urls_already_present_or_allow_listed_pass() -> None:
    changes = [FileChange("docs/a.md", "docs/a.md",
                          ("see https://old.example/y", "and https://sub.github.com/x"), ())]
    assert check_policy(changes, lambda p: "was https://old.example/x", lambda p: "") == []


def test_parse_diff_rejects_garbage() -> None:
    with pytest.raises(DiffError, match="not a unified diff"):
        parse_diff("nothing here")


# -- yaml edits ---------------------------------------------------------------------

@settings(deadline=None)
@given(tool=st.sampled_from(["web_search", "fetch_page", "run_python", "file_read", "db_query", "send_message"]),
       key=st.sampled_from(["timeout_s", "max_retries", "retry_backoff_s"]),
       value=st.integers(0, 300))
def test_set_scalar_changes_exactly_one_value(tool: str, key: str, value: int) -> None:
    new = set_scalar(AGENTS, ("tools", tool, key), value)
    before, after = yaml.safe_load(AGENTS), yaml.safe_load(new)
    before["tools"][tool][key] = value
    assert after == before
    assert [line for line in new.splitlines() if line.startswith("#")] == \
        [line for line in AGENTS.splitlines() if line.startswith("#")]


def test_append_to_block_and_missing_keys() -> None:
    new = append_to_block(AGENTS, ("agents", "EvalAgent", "persona"), "Be brief.")
    assert get(new, ("agents", "EvalAgent", "persona")).endswith("Be brief.\n")
    with pytest.raises(EditError):
        set_scalar(AGENTS, ("nope", "x"), 1)
    with pytest.raises(EditError, match="literal block"):
        append_to_block(AGENTS, ("tools", "web_search", "timeout_s"), "x")


# -- monitor and breakers ------------------------------------------------------------

@pytest.mark.parametrize(("base", "now", "spike"), [
    (0.10, 0.125, False), (0.10, 0.126, True), (0.0, 0.002, False), (0.0, 0.003, True),
    (0.2, 0.1, False),
])
def test_spike_is_a_rise_over_25_percent(base: float, now: float, spike: bool) -> None:
    assert is_spike(base, now) is spike


def _tally(rate: float, calls: int) -> Tally:
    return Tally({"local": (calls, round(rate * calls))})


def test_monitor_needs_enough_calls_to_revert_early(tmp_path: Path) -> None:
    rates = {"before": (0.1, 100), "after": (0.5, 5)}
    m = Monitor(tmp_path / "m.json",
                lambda s, u, k: _tally(*(rates["before"] if u <= AT else rates["after"])),
                timedelta(hours=1))
    m.open("p1", AT)
    assert m.check(AT + timedelta(minutes=10))[0].verdict == "watching"
    rates["after"] = (0.5, 25)
    assert m.check(AT + timedelta(minutes=11))[0].verdict == "spike"
    assert m.check(AT + timedelta(minutes=12)) == []


def test_breakers_persist_and_reset(tmp_path: Path) -> None:
    b = Breakers(tmp_path / "b.json")
    b.record_implementation_failure("bugfix", AT)
    b.halt("spike")
    again = Breakers(tmp_path / "b.json")
    assert again.category_blocked("bugfix", AT) and "halted" in (again.halted() or "")
    again.reset()
    assert Breakers(tmp_path / "b.json").category_blocked("bugfix", AT) is None
