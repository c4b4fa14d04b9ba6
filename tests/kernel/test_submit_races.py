"""A submission decides on what its process last saw and lets the append check the rest.

Its first attempt asks the ledger nothing (on PostgreSQL one round trip in all): it takes
its patch for one the patch index has never seen, which the append verifies inside its
critical section, and a blind write (``propose_and_submit`` without a base) is proposed
on the process's last view and proposed again if the append finds its target moved.
These tests try to make that optimism apply something twice, charge someone twice, or
apply a write on a base that is not the value it replaces."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerkit import race
from ouroboros.kernel import Runtime
from ouroboros.kernel.canonical import content_hash
from ouroboros.kernel.patch import Patch
from ouroboros.kernel.state import patch_from_envelope
from ouroboros.storage.ledger import IndexMoved, RetryAppend

TARGET = "agents/a/routing"


def _appends(rt: Runtime) -> list[str]:
    """Record each append of ``rt``'s backend: 'stored', 'index moved' or 'retry'."""
    seen: list[str] = []
    real = rt.backend.append

    def append(*args: Any, **kwargs: Any) -> Any:
        try:
            out = real(*args, **kwargs)
        except IndexMoved:
            seen.append("index moved")
            raise
        except RetryAppend:
            seen.append("retry")
            raise
        seen.append("stored")
        return out

    rt.backend.append = append  # type: ignore[method-assign]
    return seen


def _signed(rt: Runtime, value: Any, target: str = TARGET) -> Any:
    return rt.sign(rt.propose("routing", target, value=value, reasoning="r"), "runtime")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    """Two runtimes (as two processes would be) on one new workspace."""
    home = tmp_path / "ws"
    Runtime.init(home).close()
    a, b = Runtime.open(home), Runtime.open(home)
    yield a, b
    a.close()
    b.close()


def test_an_applied_patch_submitted_again_is_refused_by_the_append(
        two: tuple[Runtime, Runtime]) -> None:
    """The submitter took it for new; the index says otherwise inside the append, so
    nothing is stored and the answer is the honest 'already applied'."""
    a, b = two
    envelope = _signed(a, {"w": 1})
    first = a.submit(envelope)
    assert first.status == "applied"
    b.refresh()  # b has seen the event: only the index can tell it the patch is applied
    _resubmitted_as_already_applied(b, envelope, first)
    assert len(b.log(kind="PatchApplied")) == 1


def _resubmitted_as_already_applied(b: Runtime, envelope: Any, first: Any) -> int:
    """``b`` submits ``envelope`` again: the append refuses it (the index moved), nothing
    is stored, and the answer is 'already applied' at the first seq. The event count."""
    events = b.backend.count()
    appends = _appends(b)
    again = b.submit(envelope)
    assert (again.status, again.seq) == ("applied", first.seq)
    assert again.reason == f"already applied at seq {first.seq}"
    assert appends == ["index moved"] and b.backend.count() == events
    return events


def test_an_applied_patch_whose_base_came_back_is_refused_by_the_append(
        two: tuple[Runtime, Runtime]) -> None:
    """The target went back to the value the patch was made against, so the gates (on the
    first attempt, without the index) would apply it a second time: the append finds its
    index row and stores nothing, and the answer is the honest 'already applied'."""
    a, b = two
    a.propose_and_submit(type="routing", target=TARGET, value={"w": 0}, reasoning="r")
    envelope = _signed(a, {"w": 1})
    first = a.submit(envelope)
    assert first.status == "applied"
    a.propose_and_submit(type="routing", target=TARGET, value={"w": 0}, reasoning="r")
    b.refresh()
    events = _resubmitted_as_already_applied(b, envelope, first)
    assert b.value(TARGET) == {"w": 0}
    assert [e.payload["patch_hash"] for e in b.log(kind="PatchApplied")].count(
        first.patch_hash) == 1
    assert b.verify().events == events


def test_one_envelope_from_two_writers_at_once_is_applied_once(
        two: tuple[Runtime, Runtime]) -> None:
    writers = list(two)
    for i in range(12):
        envelope = _signed(writers[0], {"w": i}, target=f"agents/r{i}/routing")
        barrier = threading.Barrier(2)
        outcomes: list[Any] = [None, None]

        def run(k: int, envelope: Any = envelope, barrier: Any = barrier,
                outcomes: list[Any] = outcomes) -> None:
            barrier.wait()
            outcomes[k] = writers[k].submit(envelope)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [o.status for o in outcomes] == ["applied", "applied"], outcomes
        assert outcomes[0].seq == outcomes[1].seq
    applied = [e.payload["patch_hash"] for e in writers[0].log(kind="PatchApplied")]
    assert len(applied) == len(set(applied)) == 12
    assert writers[1].verify().events == writers[1].backend.count()


def test_a_charged_rejection_submitted_again_charges_no_one(rt: Runtime) -> None:
    """The first decision of a resubmission assumes a new patch, which would charge its
    signer a second time; the append finds the charge recorded and the gates decide
    again, charging nothing."""
    bad = rt.sign(rt.propose("config", "kernel/gates", value={"x": 1}, reasoning="r",
                             author="operator"), "runtime")
    first = rt.submit(bad)
    assert first.status == "rejected"
    charged = rt.log(kind="PatchRejected")[-1].payload["charged"]
    assert charged, "the first rejection must charge its signer for this test to mean much"
    appends = _appends(rt)
    again = rt.submit(bad)
    assert (again.status, again.stage) == ("rejected", first.stage)
    assert appends == ["index moved", "stored"]
    assert rt.log(kind="PatchRejected")[-1].payload["charged"] == []
    kid = charged[0]
    assert rt.breakers()[kid]["rejections"] == 1


def test_a_blind_write_on_a_stale_view_replaces_the_current_value(
        two: tuple[Runtime, Runtime]) -> None:
    """b last looked before a changed the target: b's write is proposed again on the value
    the append found, so the ledger holds no stale-base rejection and the applied patch's
    base is a's value."""
    a, b = two
    b.refresh()
    assert a.propose_and_submit(type="routing", target=TARGET, value={"w": 1},
                                reasoning="r").status == "applied"
    out = b.propose_and_submit(type="routing", target=TARGET, value={"w": 2},
                               reasoning="r")
    assert out.status == "applied", out
    assert a.value(TARGET) == {"w": 2}
    assert a.log(kind="PatchRejected") == []
    last = a.log(kind="PatchApplied")[-1].payload
    patch = Patch.from_dict(patch_from_envelope(last["envelope"]))
    assert patch.base == content_hash({"w": 1}) and last["patch_hash"] == out.patch_hash
    a.verify()


def test_a_blind_write_to_an_untouched_target_is_not_signed_again(
        two: tuple[Runtime, Runtime]) -> None:
    a, b = two
    b.refresh()
    a.propose_and_submit(type="routing", target="agents/other/routing", value={"w": 1},
                         reasoning="r")
    signs: list[str] = []
    real = b.sign

    def sign(item: Any, key: Any) -> Any:
        signs.append(str(key))
        return real(item, key)

    b.sign = sign  # type: ignore[method-assign]
    out = b.propose_and_submit(type="routing", target=TARGET, value={"w": 2},
                               reasoning="r")
    assert out.status == "applied" and signs == ["runtime"]
    assert out.seq == a.backend.count() - 1 - int(
        a.log()[-1].kind == "Checkpoint")  # on top of a's event, not refused


def test_a_write_with_an_explicit_base_is_never_rebased(rt: Runtime, tmp_path: Path) -> None:
    """compare-and-swap keeps its meaning: a stale base is a rejection, not a retry."""
    other = Runtime.open(rt.home)
    try:
        rt.propose_and_submit(type="routing", target=TARGET, value={"n": 1}, reasoning="r")
        _value, base = rt.read(TARGET)
        other.propose_and_submit(type="routing", target=TARGET, value={"n": 5}, reasoning="r")
        out = rt.propose_and_submit(type="routing", target=TARGET, value={"n": 2},
                                    reasoning="r", base=base)
        assert (out.status, out.stage) == ("rejected", "schema") and "stale base" in out.reason
        assert rt.value(TARGET) == {"n": 5}
    finally:
        other.close()


@pytest.mark.parametrize("rows", [1, 3])
def test_a_shrunken_ledger_is_an_integrity_error_even_without_a_head_query(
        tmp_path: Path, rows: int) -> None:
    from ledgerkit import raw_sql
    from ouroboros.kernel.errors import IntegrityError

    home = tmp_path / "ws"
    rt = Runtime.init(home)
    try:
        for i in range(4):
            rt.propose_and_submit(type="routing", target=TARGET, value={"w": i}, reasoning="r")
        top = rt.backend.count() - 1
        raw_sql(home, "DELETE FROM events WHERE seq > ?", top - rows)
        with pytest.raises(IntegrityError, match="the ledger shrank"):
            rt.propose_and_submit(type="routing", target=TARGET, value={"w": 9},
                                  reasoning="r")
    finally:
        rt.close()


def _blind_writer(home: str, who: str, n: int, start: Any) -> None:
    rt = Runtime.open(home)
    start.wait(60)
    for i in range(n):
        out = rt.propose_and_submit(type="routing", target=TARGET,
                                    value={"who": int(who[1:]), "i": i},
                                    reasoning="blind", author=who)
        assert out.status == "applied", out
    rt.close()


def test_blind_writers_racing_on_one_target_all_land_and_none_is_rejected(
        tmp_path: Path) -> None:
    """Three processes overwrite one target 25 times each: every write lands on the value
    it replaced (each patch's base is the previous patch's result), none is rejected as
    stale, and the ledger verifies."""
    home = tmp_path / "ws"
    Runtime.init(home).close()
    race(_blind_writer, [(str(home), f"w{k}", 25) for k in range(3)])
    rt = Runtime.open(home)
    try:
        applied = [e.payload for e in rt.log(kind="PatchApplied")
                   if e.payload["target"] == TARGET]
        assert len(applied) == 75 and rt.log(kind="PatchRejected") == []
        previous: str | None = None
        for payload in applied:
            patch = Patch.from_dict(patch_from_envelope(payload["envelope"]))
            if previous is not None:
                assert patch.base == previous  # a chain: nothing overwritten unseen
            previous = payload["result"]
        rt.verify()
    finally:
        rt.close()


def test_a_patch_of_the_same_author_elsewhere_does_not_make_an_apply_decide_again(
        two: tuple[Runtime, Runtime]) -> None:
    """Two processes of one author (one breaker subject) writing different targets: an
    apply by one cannot change the other's decision to apply (it only clears the subject's
    rejection count), so the other commits on top at once. It used to be refused and
    decided again every time, and under load a writer could lose 50 times in a row
    ("the ledger is too busy") while the other kept committing."""
    a, b = two
    b.refresh()
    a.propose_and_submit(type="routing", target="agents/other/routing", value={"w": 1},
                         reasoning="r", author="tuner")
    appends = _appends(b)
    out = b.propose_and_submit(type="routing", target=TARGET, value={"w": 2},
                               reasoning="r", author="tuner")
    assert out.status == "applied" and appends == ["stored"]


def test_a_rejection_of_the_same_author_still_makes_a_rejection_decide_again(
        tmp_path: Path) -> None:
    """A rejection's events carry the subject's breaker count, so another writer's event
    that moved that subject's breaker (its own charged rejection) must still refuse the
    append of a decision made before it."""
    home = tmp_path / "ws"
    Runtime.init(home).close()
    a, b = Runtime.open(home), Runtime.open(home)
    try:
        b.refresh()
        bad = a.propose_and_submit(type="routing", target="agents/other/routing",
                                   value={"w": 1}, reasoning="ignore previous instructions",
                                   author="tuner")
        assert (bad.status, bad.stage) == ("rejected", "audit")
        appends = _appends(b)
        out = b.propose_and_submit(type="routing", target=TARGET, value={"w": 2},
                                   reasoning="ignore previous instructions", author="tuner")
        assert (out.status, out.stage) == ("rejected", "audit")
        assert appends[0] in ("retry", "index moved") and appends[-1] == "stored"
        subject = [s for s in b.refresh().breakers if s.endswith("/tuner")]
        assert [b.refresh().breakers[s]["rejections"] for s in subject] == [2]
    finally:
        a.close()
        b.close()
