"""State as a fold: history, snapshots, replay determinism, rollback, capability events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouroboros.kernel import PatchRejected, Runtime, UsageError, WorkspaceMissing
from ouroboros.kernel.audit import policy_source
from ouroboros.kernel.canonical import content_hash
from ouroboros.kernel.trust import TRUST_TARGET


def routing(rt: Runtime, target: str, value: dict[str, int]) -> int:
    out = rt.propose_and_submit(type="routing", target=target, value=value, reasoning="r",
                                author="tuner")
    assert out.status == "applied" and out.seq is not None
    return out.seq


def test_state_at_a_past_sequence_number(rt: Runtime) -> None:
    first = routing(rt, "agents/a/routing", {"w": 1})
    routing(rt, "agents/a/routing", {"w": 2})
    assert rt.state("agents/a/routing", at=first) == {"w": 1}
    assert rt.state("agents/a/routing") == {"w": 2}
    assert rt.state("agents/a/routing", at=0) is None


def test_snapshots_make_reopening_cheap_and_agree_with_replay(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=5)
    for i in range(23):
        routing(rt, f"agents/a{i % 4}/routing", {"w": i})
    expected = rt.state_hash()
    rt.close()
    reopened = Runtime.open(tmp_path / "ws")
    assert reopened.backend.latest_snapshot() is not None
    assert reopened.state_hash() == expected
    report = reopened.replay()
    assert report.consistent and report.state_hash == expected and report.events == 24


def test_open_reads_only_the_events_past_the_signed_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening folds from the newest signed snapshot: of the events at or below it, only
    the genesis (the runtime key) and the snapshot's own event (its hash) are read, and
    each event past it once (the local checkpoint pins the head, so none is checked
    twice)."""
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=50)
    for i in range(130):
        routing(rt, f"agents/a{i % 4}/routing", {"w": i})
    head = rt.backend.count() - 1
    snap = rt.backend.latest_snapshot()
    assert snap is not None and 0 < snap.seq < head
    rt.close()
    backend_type = type(rt.backend)
    real = backend_type.read
    seqs: list[int] = []

    def read(self: object, start: int = 0, stop: int | None = None) -> object:
        for e in real(self, start, stop):  # type: ignore[arg-type]
            seqs.append(e.seq)
            yield e

    monkeypatch.setattr(backend_type, "read", read)
    Runtime.open(tmp_path / "ws").close()
    assert [s for s in seqs if s <= snap.seq] in ([0, snap.seq], [snap.seq, 0])
    past = [s for s in seqs if s > snap.seq]
    assert sorted(past) == list(range(snap.seq + 1, head + 1)), seqs


def test_open_missing_workspace_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceMissing, match="no Ouroboros workspace") as err:
        Runtime.open(tmp_path / "nowhere")
    assert "ouro init" in err.value.hint


def test_init_twice_is_refused(rt: Runtime) -> None:
    with pytest.raises(UsageError, match="already exists"):
        Runtime.init(rt.home)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)), min_size=1,
                max_size=12))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_replay_is_deterministic_and_rollback_restores_exact_hash(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]) -> None:
    rt = Runtime.init(tmp_path_factory.mktemp("p") / "ws", snapshot_interval=3)
    hashes = {0: rt.state_hash()}
    for target, w in steps:
        old = rt.value(f"agents/{target}/routing") or {}
        if w == 0 and old:
            out = rt.propose_and_submit(type="routing", target=f"agents/{target}/routing",
                                        delete=True, reasoning="drop", author="t")
        else:
            out = rt.propose_and_submit(type="routing", target=f"agents/{target}/routing",
                                        json_patch=[{"op": "add", "path": f"/k{w}", "value": w}]
                                        if old else None, value=None if old else {"k": w},
                                        reasoning="tune", author="t")
        if out.status == "applied":
            assert out.seq is not None
            hashes[out.seq] = rt.state_hash()
    first, second = rt.replay(), rt.replay()
    assert first.state_hash == second.state_hash == rt.state_hash() and first.consistent
    seq = sorted(hashes)[len(hashes) // 2]
    rt.rollback(to=seq)
    assert rt.state_hash() == hashes[seq]
    live = rt.refresh()  # the per-target hash cache the base checks use never goes stale
    assert {t: live.target_hash(t) for t in live.values} == {
        t: content_hash(v) for t, v in live.values.items()}
    rt.close()


def test_rollback_of_one_patch_and_history_kept(rt: Runtime) -> None:
    routing(rt, "agents/a/routing", {"w": 1})
    routing(rt, "agents/b/routing", {"w": 1})
    h = rt.log(kind="PatchApplied")[-1].payload["patch_hash"]
    before = len(rt.log())
    [out] = rt.rollback(patch=h[:20])
    assert out.status == "applied"
    assert rt.value("agents/b/routing") is None and rt.value("agents/a/routing") == {"w": 1}
    last = rt.log()[-1]
    assert len(rt.log()) == before + 1 and last.payload["rollback_of"] == h


def test_rollback_by_hash_refuses_what_is_no_hash_prefix(rt: Runtime) -> None:
    """Not hex, too long, empty, or hex after a stray prefix: a usage error before the
    index is queried (``bytes.fromhex`` raised ValueError on these), nothing appended;
    upper-case hex and the ``sha256:`` prefix are still accepted."""
    routing(rt, "agents/a/routing", {"w": 1})
    h = rt.log(kind="PatchApplied")[-1].payload["patch_hash"]
    before = len(rt.log())
    for bad in ("[[[[", "zz", "", "sha256:", "0" * 65, h + "0", "abc\n", "１２３", "sha1:ab"):
        with pytest.raises(UsageError, match="not a patch hash or a prefix of one"):
            rt.rollback(patch=bad)
    assert len(rt.log()) == before
    [out] = rt.rollback(patch=h[:20].upper().replace("SHA256:", "sha256:"))
    assert out.status == "applied" and rt.value("agents/a/routing") is None


def test_rollback_of_a_patch_whose_target_moved_on_is_refused(rt: Runtime) -> None:
    routing(rt, "agents/a/routing", {"w": 1})
    h = rt.log(kind="PatchApplied")[-1].payload["patch_hash"]
    routing(rt, "agents/a/routing", {"w": 2})
    with pytest.raises(UsageError, match="changed after patch"):
        rt.rollback(patch=h)


def test_rollback_of_trust_change_needs_root(rt: Runtime) -> None:
    policy = rt.value(TRUST_TARGET)
    policy["delegations"][0]["types"].append("prompt")
    seq = rt.submit(rt.sign(rt.propose("trust", TRUST_TARGET, value=policy, reasoning="r",
                                       author="op"), "root")).seq
    assert seq is not None
    with pytest.raises(PatchRejected, match="refused"):
        rt.rollback(to=seq - 1, keys=["runtime"])
    rt.rollback(to=seq - 1)
    assert "prompt" not in rt.value(TRUST_TARGET)["delegations"][0]["types"]


def test_capability_events_are_signed_ledger_events(rt: Runtime) -> None:
    seq = rt.record("EvolutionGeneration", {"generation": 3, "fitness": 0.5})
    assert rt.log(kind="EvolutionGeneration")[0].seq == seq
    rt.verify()
    with pytest.raises(UsageError, match="invalid event kind"):
        rt.record("PatchApplied", {})


def test_rego_policy_unit_tests_pass() -> None:
    """Every `test_` rule in audit_test.rego must evaluate to true."""
    from regopy import Interpreter

    from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG

    rego = Interpreter()
    rego.add_module("audit.rego", policy_source())
    tests_src = policy_source("audit_test.rego")
    rego.add_module("audit_test.rego", tests_src)
    rego.add_data({"config": DEFAULT_AUDIT_CONFIG})
    names = re.findall(r"^(test_\w+) if", tests_src, re.M)
    assert len(names) >= 10
    failed = [n for n in names
              if [r.expressions for r in rego.query(f"data.ouroboros.audit.{n}").results] != [[True]]]
    assert failed == []


def test_a_broken_rego_test_is_reported_as_failing() -> None:
    """The harness above can fail: a test asserting the opposite evaluates to not-true."""
    from regopy import Interpreter

    from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG

    rego = Interpreter()
    rego.add_module("audit.rego", policy_source())
    rego.add_module("t.rego", "package ouroboros.audit\nimport rego.v1\n"
                    "test_wrong if {\n\tcount(deny) == 0 with input.target as \"kernel/x\"\n"
                    "\t\twith input.signer as {\"root\": false, \"rights\": []}\n"
                    "\t\twith input.granted as []\n\t\twith input.texts as []\n"
                    "\t\twith input.new_urls as []\n}\n")
    rego.add_data({"config": DEFAULT_AUDIT_CONFIG})
    assert [r.expressions for r in rego.query("data.ouroboros.audit.test_wrong").results] != [[True]]
