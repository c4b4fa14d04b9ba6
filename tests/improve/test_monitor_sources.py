"""The monitoring window's verdict (revert or keep a merge), attacked by telemetry token
holders over the real receiver (real SQLite dedup, real day files, real git): the window
judges only the calls of what the merge changed, counts each source up to a share, and
holds (no revert, no keep) a verdict that turns on one untrusted source."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.capabilities.improve.intake.receiver import SeenKeys, receive, seen_keys
from ouroboros.capabilities.improve.intake.store import TelemetryStore
from ouroboros.capabilities.improve.proposals.monitor import source_cap

from .loopkit import T0, Harness, tool_events

_IDS = itertools.count(1)


class World:
    def __init__(self, tmp: Path,
                 before_merge: Callable[[World], None] | None = None) -> None:
        self.h = Harness(tmp)
        self.store = TelemetryStore(self.h.rt.home, clock=self.h.clock)
        self.seen: SeenKeys = seen_keys(self.h.rt.home)
        # 24 h of the runtime's own calls: web_search times out 30 % of the time
        history = tool_events(T0, 24, {"web_search": 0.3})
        self.store.append(history)
        self.h.loop.events = lambda since, until: self.store.events(since=since, until=until)
        (outcome,) = self.h.loop.propose_from_findings(analyse(history, self.h.clock()))
        assert outcome.proposal.key == "tool-timeout:web_search"
        self.pid = outcome.proposal.id
        self.merged = self.h.clock()
        if before_merge is not None:  # calls in the baseline hour (minutes_after < 0)
            before_merge(self)
        assert self.h.loop.approve(self.pid).proposal.status == "implemented"
        self.merged = self.h.clock()

    def post(self, token: str, tool: str, n: int, *, ok: bool = False,
             minutes_after: float = 1) -> None:
        """``n`` spans of ``tool`` through the receiver, as the token ``token`` posts them."""
        at = self.merged + timedelta(minutes=minutes_after)
        spans = [_span(tool, at + timedelta(milliseconds=i), ok) for i in range(n)]
        doc = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "ResearchAgent"}}]},
            "scopeSpans": [{"spans": spans}]}]}
        report = receive(doc, "traces", self.store, self.seen, token)
        assert report.stored == n, report

    def local(self, fail: float, hours: float = 0.5, seed: int = 11) -> None:
        """The runtime's own calls since the merge (all three tools)."""
        self.store.append(tool_events(self.merged, hours, {"web_search": fail}, seed=seed))

    def tick_at(self, minutes: float) -> Any:
        self.h.clock.advance(seconds=(self.merged + timedelta(minutes=minutes)
                                      - self.h.clock()).total_seconds())
        (check,) = self.h.loop.tick()
        return check

    def status(self) -> str:
        return self.h.loop.get(self.pid).status


def _span(tool: str, at: datetime, ok: bool) -> dict[str, Any]:
    n = next(_IDS)
    nanos = int(at.timestamp() * 1_000_000) * 1000
    return {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": f"execute_tool {tool}",
            "startTimeUnixNano": str(nanos), "endTimeUnixNano": str(nanos + 40_000_000),
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": tool}}],
            "status": {"code": 1 if ok else 2, "message": "boom"}}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.seen.close()


@pytest.fixture
def world_with(tmp_path: Path) -> Iterator[Callable[[Callable[[World], None]], World]]:
    """A world whose ``before_merge`` posts calls into the baseline hour."""
    made: list[World] = []

    def make(before_merge: Callable[[World], None]) -> World:
        made.append(World(tmp_path, before_merge))
        return made[-1]
    yield make
    for world in made:
        world.seen.close()


@pytest.mark.parametrize("local_traffic", [False, True], ids=["alone", "beside-local"])
def test_one_token_posting_50_failing_spans_for_the_changed_tool_does_not_revert(
        w: World, local_traffic: bool) -> None:
    if local_traffic:
        w.local(fail=0.0)
    w.post("ci-token", "web_search", 50)
    early = w.tick_at(30)
    assert early.verdict == "watching" and early.held and "ci-token" in early.held
    assert w.status() == "implemented"
    end = w.tick_at(61)
    assert end.verdict == "watching" and end.held and end.extended_until
    assert w.status() == "implemented"
    assert "held" in w.h.loop.get(w.pid).log[-1]
    assert "timeout_s: 60" in (w.h.main_file("agents.yaml") or "")


def test_failing_spans_for_an_unrelated_tool_do_not_revert(w: World) -> None:
    w.local(fail=0.0)
    for token in ("a", "b", "c"):
        w.post(token, "run_python", 30)
    assert w.tick_at(30).verdict == "watching"
    end = w.tick_at(61)
    assert end.verdict == "stable" and end.current == 0.0 and end.held is None
    assert w.status() == "implemented"


def test_three_sources_agreeing_do_revert(w: World) -> None:
    for token in ("a", "b", "c"):
        w.post(token, "web_search", 10)
    check = w.tick_at(30)
    assert check.verdict == "spike" and check.held is None and check.calls == 30
    assert w.status() == "reverted"


def test_a_flood_of_successes_from_one_source_does_not_keep_a_failing_change(
        w: World) -> None:
    for token in ("a", "b", "c"):
        w.post(token, "web_search", 10)
    w.post("flood", "web_search", 2000, ok=True)
    check = w.tick_at(30)
    assert check.verdict == "spike" and check.current > 0.5
    assert w.status() == "reverted"


@pytest.mark.parametrize("local_failures", [0.9, 0.5])
def test_successes_from_one_token_never_keep_a_change_the_runtime_sees_failing(
        w: World, local_failures: float) -> None:
    """The runtime's own calls fail; one token floods successes. Capped to the runtime's
    weight, the flood either still loses (a spike: reverted) or is what hides the spike:
    then the window is held, never judged stable."""
    w.local(fail=local_failures)
    w.post("flood", "web_search", 2000, ok=True)
    check = w.tick_at(30)
    if check.verdict == "spike":
        assert w.status() == "reverted" and local_failures == 0.9
        return
    assert check.held and "flood" in check.held
    end = w.tick_at(61)
    assert end.verdict == "watching" and end.held and "flood" in end.held
    assert w.status() == "implemented"  # not judged stable: held for a human


def test_a_day_file_line_with_an_unparseable_timestamp_is_skipped_and_counted(
        w: World) -> None:
    w.local(fail=0.0, hours=1.1)
    day = w.store.root / f"{w.merged:%Y-%m-%d}.jsonl"
    with day.open("ab") as f:
        for bad in (b'"2026-01-11T00:3x:00.000Z"', b'"2026-01-11T99:00:00.000Z"',
                    b'"2026-01-11Tgarbage"'):
            f.write(b'{"timestamp": ' + bad + b', "event_type": "tool_call", '
                    b'"tool": "web_search", "success": false, "source": "local"}\n')
    check = w.tick_at(61)
    # the store's range filter drops the two that sort after the window; the monitor
    # reads the first, which looks like a timestamp and is not one
    assert check.verdict == "stable" and check.unreadable == 1
    assert w.status() == "implemented"


@pytest.mark.parametrize(("counts", "cap"), [
    ([50], 50), ([20, 50], 20), ([10, 10, 10, 2000], 15), ([10, 10, 10], 10),
    ([5, 100, 100], 5), ([], 0)])
def test_source_cap_keeps_each_source_within_its_share(counts: list[int], cap: float) -> None:
    assert source_cap(counts) == pytest.approx(cap)
    if len(counts) >= 3:
        counted = sum(min(c, cap) for c in counts)
        assert all(min(c, cap) <= counted / 3 + 1e-9 for c in counts)


def test_one_token_flooding_the_baseline_hour_with_failures_does_not_keep_a_bad_change(
        world_with: Callable[[Callable[[World], None]], World]) -> None:
    """The hour before the merge: the runtime's own web_search fails 30 %; one token posts
    100 failing calls. Capped to the runtime's weight that is still a 65 % baseline, so a
    change that doubles the runtime's failures (60 %) looked no worse and was kept."""
    w = world_with(lambda world: world.post("flood", "web_search", 100,
                                            minutes_after=-30))
    w.local(fail=0.6)
    early = w.tick_at(30)
    assert early.verdict == "watching" and early.held and "flood" in early.held
    assert w.status() == "implemented"
    end = w.tick_at(61)
    assert end.verdict == "watching" and end.held and "flood" in end.held
    assert w.status() == "implemented"  # not kept (stable): held for a human
    assert "held" in w.h.loop.get(w.pid).log[-1]


def test_three_sources_agreeing_in_the_baseline_hour_are_judged_as_before(
        world_with: Callable[[Callable[[World], None]], World]) -> None:
    def baseline(world: World) -> None:
        for token in ("a", "b", "c"):  # each like the runtime: 12 of 40 fail
            world.post(token, "web_search", 12, minutes_after=-40)
            world.post(token, "web_search", 28, ok=True, minutes_after=-20)

    w = world_with(baseline)
    for token in ("a", "b", "c"):
        w.post(token, "web_search", 10)
    check = w.tick_at(30)
    assert check.verdict == "spike" and check.held is None
    assert w.status() == "reverted"


class Manual(World):
    """A merged change whose key names neither a tool nor an agent (a hand-written change
    to the runbook): nothing narrows its window to one tool."""

    def __init__(self, tmp: Path) -> None:
        self.h = Harness(tmp)
        self.store = TelemetryStore(self.h.rt.home, clock=self.h.clock)
        self.seen = seen_keys(self.h.rt.home)
        self.store.append(tool_events(T0, 24, {}))  # the runtime's own calls never fail
        self.h.loop.events = lambda since, until: self.store.events(since=since, until=until)
        runbook = self.h.main_file("docs/runbook.md") or ""
        out = self.h.loop.propose(self.h.draft({"docs/runbook.md": runbook + "- note\n"}))
        assert out is not None and out.proposal.key == "manual"
        self.pid = out.proposal.id
        assert self.h.loop.approve(self.pid).proposal.status == "implemented"
        self.merged = self.h.clock()


@pytest.mark.parametrize("tokens", [("ci",), ("a", "b", "c")], ids=["one", "three"])
def test_tokens_failing_any_tool_neither_revert_nor_hold_a_change_naming_no_tool(
        tmp_path: Path, tokens: tuple[str, ...]) -> None:
    """Judged over every tool's calls, three tokens failing run_python reverted a runbook
    edit and one token held it (a halt); such a window counts trusted sources only."""
    w = Manual(tmp_path)
    try:
        w.local(fail=0.0)
        for token in tokens:
            w.post(token, "run_python", 30)
        assert w.tick_at(30).verdict == "watching"
        end = w.tick_at(61)
        assert end.verdict == "stable" and end.held is None and end.current == 0.0
        assert w.status() == "implemented"
    finally:
        w.seen.close()


def test_the_runtime_failing_still_reverts_a_change_naming_no_tool(tmp_path: Path) -> None:
    w = Manual(tmp_path)
    try:
        w.local(fail=0.9)
        w.post("flood", "web_search", 2000, ok=True)  # a token's successes do not hide it
        check = w.tick_at(30)
        assert check.verdict == "spike" and check.held is None
        assert w.status() == "reverted"
    finally:
        w.seen.close()


def test_one_token_flooding_the_baseline_hour_with_successes_does_not_revert_a_good_change(
        world_with: Callable[[Callable[[World], None]], World]) -> None:
    """The mirror image: 100 successes in the hour before halve the baseline (30 % -> 15 %),
    so an unchanged 30 % after the merge looked like a spike and reverted a good change."""
    w = world_with(lambda world: world.post("flood", "web_search", 100, ok=True,
                                            minutes_after=-30))
    w.local(fail=0.3, seed=2)  # 30 % after the merge too (6 of 20)
    check = w.tick_at(30)
    assert check.verdict == "watching" and check.held and "flood" in check.held
    assert w.status() == "implemented"
    end = w.tick_at(61)
    assert end.verdict == "watching" and end.held and "flood" in end.held
    assert w.status() == "implemented"
