"""A target keeps the patch type that set it.

The default trust policy delegates ``skill``, ``skill_review``, ``bytecode``, ``routing``
and ``file`` on every target to the runtime key. The attacker holds that key (any
capability, any API route that signs with it) and submits a patch of one of those types
against a target another type set: an agent's prompt, a config. The schema gate refuses it,
naming both types, and nothing is applied; only the root threshold may convert a target.
Rollbacks restore the earlier type, and replay, verify and snapshots agree on the types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import PatchType, Runtime
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.state import KernelState
from ouroboros.kernel.verify import snapshot_statement

from .kernelkit import count_events, grant, sql, submit

PROMPT = "agents/support/prompt"
CONFIG = "config/support/params"


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=1000)
    for name in ("bytecode", "skill"):  # stand-ins with the real names; any value
        rt.registry.register_type(PatchType(name, {}))
    grant(rt, "alice", ["prompt", "config"])
    assert submit(rt, "alice", type="prompt", target=PROMPT,
                  value="You help customers.").status == "applied"
    assert submit(rt, "alice", type="config", target=CONFIG,
                  value={"temperature": 0.2}).status == "applied"
    yield rt
    rt.close()


@pytest.mark.parametrize("ptype", ["routing", "bytecode", "skill"])
@pytest.mark.parametrize("target, held", [(PROMPT, "prompt"), (CONFIG, "config")])
def test_the_runtime_key_cannot_replace_a_target_with_another_type(
        rt: Runtime, ptype: str, target: str, held: str) -> None:
    before, events = rt.value(target), count_events(rt.home)
    out = rt.propose_and_submit(type=ptype, target=target, value={"w": 1},
                                reasoning="tune", author="tuner")
    assert out.status == "rejected" and out.stage == "schema", out
    assert f"set by a {held} patch" in out.reason and f"a {ptype} patch" in out.reason
    assert "\n" not in out.reason
    assert rt.value(target) == before
    assert count_events(rt.home) == events + 1  # the rejection only
    assert rt.log()[-1].kind == "PatchRejected"


def test_nor_delete_it(rt: Runtime) -> None:
    out = rt.propose_and_submit(type="routing", target=PROMPT, delete=True,
                                reasoning="tidy", author="tuner")
    assert out.status == "rejected" and "set by a prompt patch" in out.reason, out
    assert rt.value(PROMPT) == "You help customers."


def test_the_root_key_may_convert_a_target(rt: Runtime) -> None:
    out = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 1},
                                reasoning="convert", author="root", keys=["root"])
    assert out.status == "applied", out
    assert rt.value(PROMPT) == {"w": 1}
    # Converted: now the runtime key's routing patches are the ones that fit, not prompts.
    assert rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 2},
                                 reasoning="tune", author="tuner").status == "applied"
    out = submit(rt, "alice", type="prompt", target=PROMPT, value="back")
    assert out.status == "rejected" and "set by a routing patch" in out.reason


def test_same_type_and_empty_targets_take_any_type(rt: Runtime) -> None:
    assert rt.propose_and_submit(type="routing", target="agents/new/routing", value={"w": 1},
                                 reasoning="new", author="tuner").status == "applied"
    assert rt.propose_and_submit(type="routing", target="agents/new/routing", value={"w": 2},
                                 reasoning="tune", author="tuner").status == "applied"
    assert rt.propose_and_submit(type="routing", target="agents/new/routing",
                                 delete=True, reasoning="drop",
                                 author="tuner").status == "applied"
    # Deleted: empty again, so any type may set it.
    assert rt.propose_and_submit(type="bytecode", target="agents/new/routing", value={"p": 1},
                                 reasoning="new", author="tuner").status == "applied"


def test_a_rollback_across_a_type_change_restores_the_earlier_type(rt: Runtime) -> None:
    out = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 1},
                                reasoning="convert", author="root", keys=["root"])
    assert out.status == "applied"
    [undo] = rt.rollback(patch=out.patch_hash)
    assert undo.status == "applied"
    assert rt.value(PROMPT) == "You help customers."
    # The prompt type is back: prompts fit, the runtime key's routing does not.
    bad = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 3},
                                reasoning="tune", author="tuner")
    assert bad.status == "rejected" and "set by a prompt patch" in bad.reason
    assert submit(rt, "alice", type="prompt", target=PROMPT,
                  value="You help.").status == "applied"
    # Rolling back to before all of it (the rollback included) lands on the first value.
    seq = rt.log(kind="PatchApplied")[1].seq  # the config patch
    rt.rollback(to=seq)
    assert rt.value(PROMPT) == "You help customers."
    assert rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 4},
                                 reasoning="tune", author="tuner").status == "rejected"
    assert rt.verify().events == count_events(rt.home)


def test_replay_verify_and_snapshots_agree_after_restart(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=3)
    grant(rt, "alice", ["prompt"])
    submit(rt, "alice", type="prompt", target=PROMPT, value="hi")
    rt.propose_and_submit(type="routing", target="agents/support/routing", value={"w": 1},
                          reasoning="tune", author="tuner")
    out = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 1},
                                reasoning="convert", author="root", keys=["root"])
    rt.rollback(patch=out.patch_hash)
    for i in range(4):  # past another snapshot
        rt.propose_and_submit(type="routing", target="agents/support/routing",
                              value={"w": i}, reasoning="tune", author="tuner")
    home = rt.home
    rt.close()
    snaps = sql(home, "SELECT data FROM snapshots ORDER BY seq DESC LIMIT 1")
    assert json.loads(snaps[0][0])["types"][PROMPT] == "prompt"
    rt = Runtime.open(home)
    assert rt._state.types[PROMPT] == "prompt"
    assert rt._state.types["agents/support/routing"] == "routing"
    assert rt.replay().consistent
    assert rt.verify().snapshots >= 2
    bad = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 9},
                                reasoning="tune", author="tuner")
    assert bad.status == "rejected" and "set by a prompt patch" in bad.reason
    rt.close()


def _as_written_before_the_type_lock(home: Path, signer: Any) -> None:
    """Every snapshot rewritten in the form of the runtimes before the type lock (no
    ``types``), signed as they signed it."""
    for seq, data in sql(home, "SELECT seq, data FROM snapshots"):
        old = json.loads(data)
        old.pop("types"), old.pop("replaced_types")
        raw = canonical_bytes(old)
        sql(home, "UPDATE snapshots SET data = ?, sig = ? WHERE seq = ?", raw,
            signer.sign(snapshot_statement(raw)), seq)


def _tune_then_downgrade(rt: Runtime, tunes: int) -> tuple[Path, int]:
    """``tunes`` routing patches, then the workspace closed and its snapshots rewritten
    as before the type lock; its home and head seq."""
    for i in range(tunes):
        rt.propose_and_submit(type="routing", target="agents/support/routing",
                              value={"w": i}, reasoning="tune", author="tuner")
    home, signer, head = rt.home, rt.signer, rt.backend.count() - 1
    rt.close()
    _as_written_before_the_type_lock(home, signer)
    return home, head


def test_a_snapshot_written_before_the_type_lock_is_not_trusted_for_types(
        tmp_path: Path) -> None:
    """An old runtime's snapshot (signed, but with no ``types``) must neither fail
    ``verify`` nor open as a state where every target is empty of type."""
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=3)
    grant(rt, "alice", ["prompt"])
    submit(rt, "alice", type="prompt", target=PROMPT, value="hi")
    for i in range(5):
        rt.propose_and_submit(type="routing", target="agents/support/routing",
                              value={"w": i}, reasoning="tune", author="tuner")
    home, signer = rt.home, rt.signer
    state_hash = rt.state_hash()
    rt.close()
    _as_written_before_the_type_lock(home, signer)
    rt = Runtime.open(home)
    assert rt.snapshot_problems == {}
    assert rt.state_hash() == state_hash
    assert rt._state.types[PROMPT] == "prompt"
    out = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 9},
                                reasoning="tune", author="tuner")
    assert out.status == "rejected" and "set by a prompt patch" in out.reason
    assert rt.value(PROMPT) == "hi"
    assert rt.verify().snapshots >= 1
    assert rt.replay().consistent
    rt.close()


def test_types_of_one_kind_follow_each_other(rt: Runtime) -> None:
    """``skill_review`` holds ``skill`` versions (it only adds a person's approval)."""
    rt.registry.register_type(PatchType("skill_review", {}, kind="skill"))
    assert rt.propose_and_submit(type="skill", target="skills/t", value={"v": 1},
                                 reasoning="v1", author="skills").status == "applied"
    out = rt.propose_and_submit(type="skill_review", target="skills/t", value={"v": 2},
                                reasoning="v2", author="skills")
    assert out.status == "pending", out  # past the schema gate, waiting for a person
    rt.approve(out.patch_hash)
    assert rt.value("skills/t") == {"v": 2}
    assert rt.propose_and_submit(type="skill", target="skills/t", value={"v": 3},
                                 reasoning="v3", author="skills").status == "applied"
    out = rt.propose_and_submit(type="routing", target="skills/t", value={"w": 1},
                                reasoning="swap", author="tuner")
    assert out.status == "rejected" and "set by a skill patch" in out.reason
    assert rt.value("skills/t") == {"v": 3}


def test_the_first_open_after_the_upgrade_writes_a_current_snapshot(tmp_path: Path) -> None:
    """Read-only commands (`ouro state`) never append, so without a snapshot written on
    open every one of them would fold the ledger from genesis again (45 s at 1M events)."""
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=3)
    home, head = _tune_then_downgrade(rt, 7)
    first = Runtime.open(home)  # folds from genesis: every snapshot is of the old form
    assert first._last_snapshot == head and first.state_hash() == first.replay().state_hash
    first.close()
    second = Runtime.open(home)
    assert second._last_snapshot == head  # it started from the snapshot the first wrote
    assert second.verify().snapshots >= 1 and second.snapshot_problems == {}
    second.close()
    latest = sql(home, "SELECT seq, data FROM snapshots ORDER BY seq DESC LIMIT 1")[0]
    assert latest[0] == head and "types" in json.loads(latest[1])


def test_an_open_that_cannot_sign_a_snapshot_still_opens_on_old_snapshots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OURO_KEY_PASSPHRASE", "correct horse")  # keys made encrypted
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=3)
    for i in range(4):
        rt.propose_and_submit(type="routing", target="agents/support/routing",
                              value={"w": i}, reasoning="tune", author="tuner")
    home, signer = rt.home, rt.signer
    rt.close()
    _as_written_before_the_type_lock(home, signer)
    before = sql(home, "SELECT seq, data FROM snapshots ORDER BY seq")
    monkeypatch.delenv("OURO_KEY_PASSPHRASE")  # the runtime key cannot be loaded now
    with Runtime.open(home) as again:
        assert again.value("agents/support/routing") == {"w": 3}
        assert again._last_snapshot == -1  # folded from genesis, and said nothing
    assert sql(home, "SELECT seq, data FROM snapshots ORDER BY seq") == before


def test_a_past_state_may_start_from_a_snapshot_written_before_the_type_lock(
        tmp_path: Path) -> None:
    """`ouro state --at SEQ` (and GET /state?at=) on an upgraded workspace folded from
    genesis when only old-form snapshots covered SEQ (1.7 s at 100k events). A past state
    is only shown, never decided on, and the old form holds every value: it starts from
    such a snapshot (signed, matching its event) and equals a fold from genesis."""
    rt = Runtime.init(tmp_path / "ws", snapshot_interval=3)
    grant(rt, "alice", ["prompt"])
    submit(rt, "alice", type="prompt", target=PROMPT, value="hi")
    conv = rt.propose_and_submit(type="routing", target=PROMPT, value={"w": 1},
                                 reasoning="convert", author="root", keys=["root"])
    rt.rollback(patch=conv.patch_hash)
    home, head = _tune_then_downgrade(rt, 12)
    old = [seq for (seq,) in sql(home, "SELECT seq FROM snapshots ORDER BY seq")]
    bad = old[-2]  # a forged old-form snapshot is still refused, as any other
    sql(home, "UPDATE snapshots SET sig = ? WHERE seq = ?", b"\0" * 64, bad)
    rt = Runtime.open(home)  # writes a current snapshot at the head
    starts: list[int] = []
    read = rt.backend.read

    def recording(start: int, *rest: Any) -> Any:
        starts.append(start)
        return read(start, *rest)

    rt.backend.read = recording  # type: ignore[method-assign]
    for at in range(2, head):
        starts.clear()
        past = rt.state_at(at)
        genesis = rt._fold(KernelState(), read(0, at + 1))
        assert (past.seq, past.values, past.state_hash()) == \
            (at, genesis.values, genesis.state_hash()), at
        assert past.pending == genesis.pending and past.last_hash == genesis.last_hash, at
        trusted = max((s for s in old if s <= at and s != bad), default=-1)
        assert starts[-1] == trusted + 1, (at, starts)  # the fold began after it
    assert bad in rt.snapshot_problems
    assert rt._state.types[PROMPT] == "prompt"  # the head's types are still folded whole
    rt.close()
