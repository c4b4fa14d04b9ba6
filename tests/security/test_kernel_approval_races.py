"""Approvals and rejections racing each other on one pending patch.

Two reviewers (two processes, each with its own ``Runtime``) decide on the same pending
patch at once. The attacks: a reject that lands while the last approval is being decided
(the approval used to apply the rejected patch on top), two last approvals at once (the
second used to record a rejection of an applied patch), a reject racing an apply (it used
to record the rejection and charge the signer's breaker for a patch that applied), and
two approvals of a 2-of-N rule at once (neither may be lost).

The interleavings are made exact with the kernel's own extension points: a gate (gates
are pluggable) or a clock that lets the other reviewer act at the chosen moment. The
real-process test then runs the same race without any help.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ledgerkit import race
from ouroboros.kernel import ManualClock, NotFound, PatchType, Runtime, UsageError
from ouroboros.kernel.gates import GateResult, Submission, default_gates
from ouroboros.kernel.trust import GATES_TARGET

from .kernelkit import grant, sql

FILE = PatchType("file", {"type": "string"})


class Meanwhile:
    """A gate that, once, lets another process act while a last approval is decided."""

    name = "meanwhile"

    def __init__(self) -> None:
        self.act: Callable[[], object] | None = None

    def check(self, sub: Submission) -> GateResult:
        if self.act is not None and sub.approved:
            act, self.act = self.act, None
            act()
        return GateResult.accepted()


class MeanwhileClock(ManualClock):
    """A clock that, once, lets another process act when it is next read."""

    act: Callable[[], object] | None = None

    def now(self) -> datetime:
        if self.act is not None:
            act, self.act = self.act, None
            act()
        return super().now()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """`file` patches need one approval; `alice`, `bob` and `carol` may approve them."""
    path = tmp_path / "ws"
    with Runtime.init(path) as rt:
        rt.registry.register_type(FILE)
        for name in ("alice", "bob", "carol"):
            grant(rt, name, ["file"], rights=["approve"])
    yield path


def _open(home: Path, **kw: Any) -> Runtime:
    rt = Runtime.open(home, **kw)
    rt.registry.register_type(FILE)
    return rt


def _pending(rt: Runtime, target: str) -> str:
    out = rt.submit(rt.sign(rt.propose("file", target, value="x", reasoning="r",
                                       author="improve"), "runtime"))
    assert out.status == "pending", out
    return out.patch_hash


def _kinds(rt: Runtime, patch: str) -> list[str]:
    return [e.kind for e in rt.log() if e.payload.get("patch_hash") == patch]


def _approvals(rt: Runtime, n: int) -> None:
    gates = rt.value(GATES_TARGET)
    gates["approval"] = [{"types": ["file"], "targets": ["*"], "approvals": n}]
    out = rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r"),
                            "root"))
    assert out.status == "applied", out


def test_a_reject_landing_during_the_last_approval_is_not_overridden(home: Path) -> None:
    meanwhile = Meanwhile()
    with _open(home) as carol, _open(home, gates=[*default_gates(), meanwhile]) as bob:
        patch = _pending(carol, "docs/a.md")
        meanwhile.act = lambda: carol.reject(patch, "no", key="carol")
        with pytest.raises(NotFound, match="no pending patch"):
            bob.approve(patch, key="bob")
        assert bob.value("docs/a.md") is None
        assert _kinds(bob, patch) == ["PatchPending", "PatchRejected"]
        assert bob.verify() and bob.replay().consistent


def test_two_last_approvals_at_once_apply_once_and_record_nothing_else(home: Path) -> None:
    meanwhile = Meanwhile()
    with _open(home) as alice, _open(home, gates=[*default_gates(), meanwhile]) as bob:
        patch = _pending(alice, "docs/b.md")
        meanwhile.act = lambda: alice.approve(patch, key="alice")
        with pytest.raises(NotFound, match="no pending patch"):
            bob.approve(patch, key="bob")
        assert bob.value("docs/b.md") == "x"
        assert _kinds(bob, patch) == ["PatchPending", "PatchApproved", "PatchApplied"]


def test_a_reject_racing_an_apply_records_nothing_and_charges_no_one(home: Path) -> None:
    clock = MeanwhileClock()
    with _open(home) as alice, _open(home, clock=clock) as carol:
        patch = _pending(alice, "docs/c.md")
        clock.act = lambda: alice.approve(patch, key="alice")
        with pytest.raises(NotFound, match="no pending patch"):
            carol.reject(patch, "no", key="carol")
        assert carol.value("docs/c.md") == "x"
        assert _kinds(carol, patch) == ["PatchPending", "PatchApproved", "PatchApplied"]
        assert all(b["rejections"] == 0 for b in carol.breakers().values())


def test_two_approvals_of_a_two_of_n_rule_at_once_lose_neither(home: Path) -> None:
    clock = MeanwhileClock()
    with _open(home) as alice, _open(home, clock=clock) as bob:
        _approvals(alice, 2)
        patch = _pending(alice, "docs/d.md")
        clock.act = lambda: alice.approve(patch, key="alice")
        assert bob.approve(patch, key="bob").status == "applied"
        assert _kinds(bob, patch) == ["PatchPending", "PatchApproved", "PatchApproved",
                                      "PatchApplied"]
        assert bob.replay().consistent


def _decide(home: str, patch: str, key: str, start: Any) -> None:
    """One reviewer in its own process: approve (or, for carol, reject) the patch; losing
    the race is a clear NotFound, never a second decision."""
    with _open(Path(home)) as rt:
        start.wait()
        try:
            if key == "carol":
                rt.reject(patch, "no", key=key)
            else:
                rt.approve(patch, key=key)
        except NotFound:
            pass


@pytest.mark.parametrize("rule", [1, 2])
def test_reviewers_in_three_processes_decide_a_patch_once(home: Path, rule: int) -> None:
    with _open(home) as rt:
        if rule == 2:
            _approvals(rt, 2)
        patch = _pending(rt, "docs/e.md")
    race(_decide, [(str(home), patch, k) for k in ("alice", "bob", "carol")])
    with _open(home) as rt:
        kinds = _kinds(rt, patch)
        decided = [k for k in kinds if k in ("PatchApplied", "PatchRejected")]
        assert len(decided) == 1, kinds
        if decided == ["PatchApplied"]:
            assert kinds.count("PatchApproved") == rule and rt.value("docs/e.md") == "x"
        else:
            assert rt.value("docs/e.md") is None and kinds[-1] == "PatchRejected"
        assert patch not in rt.pending() and rt.replay().consistent


def test_a_reviewer_revoked_while_rejecting_records_no_rejection(home: Path) -> None:
    """carol's key is revoked (by root, in another process) between her reject's check
    of her right and its append: the rejection must not be recorded on a right that is
    gone, nor charge the signer."""
    clock = MeanwhileClock()
    with _open(home) as root, _open(home, clock=clock) as carol:
        patch = _pending(root, "docs/f.md")
        clock.act = lambda: root.revoke("carol", reason="left")
        with pytest.raises(UsageError, match="was revoked"):
            carol.reject(patch, "no", key="carol")
        assert _kinds(carol, patch) == ["PatchPending"] and patch in carol.pending()
        assert all(b["rejections"] == 0 for b in carol.breakers().values())


def test_a_pending_patch_the_index_already_holds_is_still_approved(home: Path) -> None:
    """A ledger written before this round may hold a pending patch that was charged once
    (a replay of a rejected envelope was queued again then). The last approval's retries
    go back to `approve`; taking the patch for one the index has never seen made every
    retry refuse, until "the ledger is too busy"."""
    with _open(home) as rt:
        patch = _pending(rt, "docs/g.md")
        sql(home, "INSERT INTO patch_log (hash, kind, seq) VALUES (?, 3, ?)",
            bytes.fromhex(patch[7:]), rt.pending()[patch]["seq"])
    with _open(home) as rt:
        assert rt.approve(patch, key="alice").status == "applied"
        assert rt.value("docs/g.md") == "x"
