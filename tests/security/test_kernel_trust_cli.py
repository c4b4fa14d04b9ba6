"""Class 8: trust is managed from the CLI: multi-key grants, expiry, revocation.

A revoked or expired key's patches are rejected with that reason; a threshold of distinct
keys is enforced; nothing but the root key can change the policy.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ouroboros.kernel import ManualClock, Runtime, SubmitOutcome
from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.trust import TRUST_TARGET

from .kernelkit import ouro, submit


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ws"
    assert ouro("init", home=h).returncode == 0
    for name in ("alice", "bob"):
        assert ouro("key", "new", name, home=h).returncode == 0
    return h


def _submit(home: Path, tmp_path: Path, keys: list[str], value: str) -> tuple[int, str]:
    (tmp_path / "v.txt").write_text(value)
    env = tmp_path / "env.json"
    r = ouro("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
             str(tmp_path / "v.txt"), "--reason", "r", "--author", keys[0], "-o", str(env),
             home=home)
    assert r.returncode == 0, r.stderr
    for k in keys:
        assert ouro("patch", "sign", str(env), "--key", k, home=home).returncode == 0
    r = ouro("patch", "submit", str(env), "--json", home=home)
    return r.returncode, json.loads(r.stdout).get("reason", "") if r.stdout else r.stderr


def test_a_two_of_two_grant_needs_both_keys(home: Path, tmp_path: Path) -> None:
    r = ouro("trust", "grant", "alice,bob", "--types", "prompt", "--targets", "agents/*",
             "--threshold", "2", "--name", "pair", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    code, reason = _submit(home, tmp_path, ["alice"], "one")
    assert code == 3 and "needs 2 signature(s) from distinct keys, found 1" in reason
    code, _ = _submit(home, tmp_path, ["alice", "bob"], "both")
    assert code == 0
    shown = json.loads(ouro("trust", "show", "--json", home=home).stdout)
    pair = next(d for d in shown["delegations"] if d["name"] == "pair")
    assert pair["threshold"] == 2 and len(pair["keys"]) == 2


def test_a_revoked_key_is_refused_by_name(home: Path, tmp_path: Path) -> None:
    assert ouro("trust", "grant", "alice", "--types", "prompt", home=home).returncode == 0
    assert _submit(home, tmp_path, ["alice"], "before")[0] == 0
    r = ouro("trust", "revoke", "alice", "--reason", "laptop stolen", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    code, reason = _submit(home, tmp_path, ["alice"], "after")
    assert code == 3 and "was revoked at" in reason and "laptop stolen" in reason
    r = ouro("trust", "grant", "alice", "--types", "prompt", home=home)
    assert r.returncode == 2 and "stays revoked" in r.stderr
    shown = ouro("trust", "show", home=home).stdout
    assert "revoked: alice" in shown


def test_an_expired_delegation_is_refused_with_its_date(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = Runtime.init(tmp_path / "ws", clock=clock)
    rt.keyring.new("alice")
    rt.grant(["alice"], types=["prompt"], expires=clock.now().replace(hour=6))
    assert submit(rt, "alice", type="prompt", target="agents/a/prompt",
                  value="early").status == "applied"
    clock.advance(hours=7)
    out = submit(rt, "alice", type="prompt", target="agents/a/prompt", value="late")
    assert out.stage == "signature"
    assert out.reason == "delegation 'alice' expired at 2026-01-01T06:00:00.000000Z"
    rt.close()


def test_grant_and_revoke_need_the_root_key(home: Path) -> None:
    assert ouro("trust", "grant", "alice", "--types", "prompt", home=home).returncode == 0
    r = ouro("trust", "grant", "alice", "--types", "prompt,trust", "--sign-with", "alice",
             home=home)
    assert r.returncode == 3 and "need 1 root signature" in r.stdout
    r = ouro("trust", "revoke", "bob", home=home)
    assert r.returncode == 2 and "key 'bob'" in r.stderr and "not in the trust policy" in r.stderr
    r = ouro("trust", "revoke", "alice", "--sign-with", "alice", home=home)
    assert r.returncode == 3 and "need 1 root signature" in r.stdout
    r = ouro("trust", "revoke", "root", home=home)  # the only root key: refused
    assert r.returncode == 2 and "root threshold" in r.stderr


def test_bad_grants_are_refused_cleanly(home: Path) -> None:
    """A value the CLI can tell is malformed (an unknown right among them) is a usage
    error, exit 2, before anything is signed; the same policy signed and submitted by
    other means is refused by the trust policy's schema gate (exit 3 in the CLI)."""
    before = json.loads(ouro("trust", "show", "--json", home=home).stdout)
    for args, code, message in [
            (["alice", "--expires", "next tuesday"], 2, "--expires"),
            (["alice", "--threshold", "3"], 2, "threshold 3 must be between 1 and the 1 key(s)"),
            (["alice", "--rights", "everything"], 2, "unknown right(s): everything"),
            (["nobody"], 2, "no key named 'nobody'")]:
        r = ouro("trust", "grant", *args, "--types", "prompt", home=home)
        assert r.returncode == code and message in (r.stderr + r.stdout), (args, r)
        assert "Traceback" not in r.stderr
    assert json.loads(ouro("trust", "show", "--json", home=home).stdout) == before
    rt = Runtime.open(home)
    try:
        outcome = rt.grant(["alice"], types=["prompt"], rights=["everything"])
        assert outcome.status == "rejected" and "everything" in outcome.reason
        assert not any(d["name"] == "alice" for d in rt.value(TRUST_TARGET)["delegations"])
    finally:
        rt.close()


def test_expiry_times_past_the_calendar_or_malformed_are_one_line_usage_errors(
        home: Path) -> None:
    """An offset that moves a time past year 9999 or before year 1 when put in UTC used
    to end in "unexpected error: OverflowError" (exit 1, 'a bug in ouro'); a leap second
    or 24:00 must not be read as some other time. Nothing is signed or stored."""
    before = json.loads(ouro("trust", "show", "--json", home=home).stdout)
    for when, message in [("9999-12-31T23:00:00-05:00", "past the calendar"),
                          ("0001-01-01T00:30:00+01:00", "past the calendar"),
                          ("2016-12-31T23:59:60Z", "is not a time"),
                          ("2027-01-01T24:00:00Z", "is not a time"),
                          ("2027-01-01T12:00:00+25:00", "is not a time")]:
        r = ouro("trust", "grant", "alice", "--types", "prompt", "--expires", when, home=home)
        assert r.returncode == 2 and message in r.stderr, (when, r)
        assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, (when, r)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr  # the error and its hint
    assert json.loads(ouro("trust", "show", "--json", home=home).stdout) == before
    # The edges themselves, a time without a zone (UTC) and an offset are stored in UTC.
    for when, stored in [("9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000000Z"),
                         ("2027-01-01T12:00", "2027-01-01T12:00:00.000000Z"),
                         ("2027-01-01T12:00:00+05:30", "2027-01-01T06:30:00.000000Z")]:
        r = ouro("trust", "grant", "alice", "--types", "prompt", "--expires", when, home=home)
        assert r.returncode == 0, (when, r.stderr)
        policy = json.loads(ouro("trust", "show", "--json", home=home).stdout)
        [alice] = [d for d in policy["delegations"] if d["name"] == "alice"]
        assert alice["expires"] == stored, when


def test_a_rollback_past_a_revocation_does_not_trust_the_key_again(home: Path,
                                                                   tmp_path: Path) -> None:
    """alice's laptop is stolen and her key revoked; later the operator rolls back to an
    earlier seq to undo a bad change. The rollback undid the revocation too, silently:
    the thief's signatures were accepted again. A revoked key stays revoked whatever
    trust patch (a rollback's, or one made by hand) drops it from `revoked`."""
    assert ouro("trust", "grant", "alice", "--types", "prompt", home=home).returncode == 0
    assert _submit(home, tmp_path, ["alice"], "good")[0] == 0
    good = json.loads(ouro("log", "--json", home=home).stdout)[-1]
    before = int(good["seq"])
    good = good["payload"]
    assert ouro("trust", "revoke", "alice", "--reason", "laptop stolen",
                home=home).returncode == 0
    shown = ouro("trust", "show", "--json", home=home).stdout
    r = ouro("rollback", "--to", str(before - 1), home=home)
    assert r.returncode == 3 and "stays revoked" in r.stderr, r
    assert "Traceback" not in r.stderr
    assert ouro("trust", "show", "--json", home=home).stdout == shown
    code, reason = _submit(home, tmp_path, ["alice"], "the thief's")
    assert code == 3 and "was revoked at" in reason
    with Runtime.open(home) as rt:  # the same by hand, root-signed
        policy = rt.value(TRUST_TARGET)
        policy["revoked"] = {}
        out = rt.submit(rt.sign(rt.propose("trust", TRUST_TARGET, value=policy,
                                           reasoning="r"), "root"))
        assert (out.status, out.stage) == ("rejected", "test") and "stays revoked" in out.reason
        assert rt.value(TRUST_TARGET)["revoked"] != {}
    # Undoing the bad change alone still works, and leaves the key revoked.
    r = ouro("rollback", "--patch", str(good["patch_hash"])[7:19], home=home)
    assert r.returncode == 0, r
    r = ouro("state", "agents/a/prompt", home=home)
    assert r.returncode == 2 and "no target 'agents/a/prompt'" in r.stderr
    assert "alice" in json.dumps(json.loads(ouro("trust", "show", "--json",
                                                  home=home).stdout)["revoked"])


def _ledger_count(home: Path) -> int:
    rt = Runtime.open(home)
    try:
        return rt.backend.count()
    finally:
        rt.close()


def test_a_grant_whose_expiry_is_already_past_is_refused(home: Path) -> None:
    """`trust grant --expires` with a time already gone was signed and stored: a
    delegation that never worked, which the operator believed existed. Refused (exit 2)
    naming the expiry and the time now, nothing appended; a future expiry still works."""
    before = _ledger_count(home)
    shown = json.loads(ouro("trust", "show", "--json", home=home).stdout)
    for when, stored in [("2020-01-01", "2020-01-01T00:00:00.000000Z"),
                         ("2026-01-01T12:00:00+01:00", "2026-01-01T11:00:00.000000Z"),
                         ("0d", None)]:
        r = ouro("trust", "grant", "alice", "--types", "prompt", "--expires", when, home=home)
        assert r.returncode == 2, (when, r)
        assert "--expires" in r.stderr and "is not in the future" in r.stderr, (when, r.stderr)
        if stored is not None:
            assert f"expiry {stored}" in r.stderr, (when, r.stderr)
        assert "now " in r.stderr and "e.g. 30d" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert _ledger_count(home) == before
    assert json.loads(ouro("trust", "show", "--json", home=home).stdout) == shown
    r = ouro("trust", "grant", "alice", "--types", "prompt", "--expires", "30d", home=home)
    assert r.returncode == 0, r.stderr
    assert _ledger_count(home) > before


def test_the_python_grant_refuses_a_past_expiry_by_the_runtimes_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = Runtime.init(tmp_path / "ws", clock=clock)
    rt.keyring.new("alice")
    count = rt.backend.count()
    with pytest.raises(UsageError, match=r"expiry 2025-12-31T23:00:00.000000Z is not in "
                                         r"the future \(now 2026-01-01T00:00:00.000000Z\)"):
        rt.grant(["alice"], types=["prompt"], expires=clock.now() - timedelta(hours=1))
    with pytest.raises(UsageError, match="is not in the future"):
        rt.grant(["alice"], types=["prompt"], expires=clock.now())
    with pytest.raises(UsageError, match="is not in the future"):  # naive: local time
        rt.grant(["alice"], types=["prompt"], expires=datetime(2025, 12, 30))
    assert rt.backend.count() == count
    assert rt.grant(["alice"], types=["prompt"],
                    expires=clock.now() + timedelta(seconds=1)).status == "applied"
    rt.close()


def _hand_built_grant(rt: Runtime, name: str, expires: str | None, keys: tuple[str, ...] = (
        "alice",), types: tuple[str, ...] = ("prompt",)) -> SubmitOutcome:
    """A root `trust` patch made without `Runtime.grant` (as a script or another client
    would build one), so only the kernel's own gates stand between it and the policy."""
    from ouroboros.kernel.trust import with_grant
    policy, base = rt.read(TRUST_TARGET)
    ids = dict(rt.keyring.public(k) for k in keys)
    new = with_grant(policy, name, ids, list(types), ["*"], 1, [], expires)
    patch = rt.propose("trust", TRUST_TARGET, value=new, base=base, author="operator",
                       reasoning=f"grant {name} by hand")
    return rt.submit(rt.sign(patch, "root"))


def test_a_hand_built_trust_patch_with_a_past_expiry_is_refused_by_the_kernel(
        tmp_path: Path) -> None:
    """`trust grant` refuses a past expiry, but a trust patch built by hand reached the
    kernel, which stored a delegation that never worked. The trust test gate refuses a
    delegation that is new or changed and already expired (by the kernel's clock), names
    it and both times; nothing is applied. A delegation that expired while in force stays
    listed through later trust patches and a revocation may narrow it; a new past expiry
    is refused, a future one (renewal) works."""
    clock = ManualClock()
    rt = Runtime.init(tmp_path / "ws", clock=clock)
    for k in ("alice", "bob"):
        rt.keyring.new(k)
    policy_before, _ = rt.read(TRUST_TARGET)
    count = rt.backend.count()
    for when in ("2025-12-31T23:00:00.000000Z", "2026-01-01T00:00:00.000000Z"):
        out = _hand_built_grant(rt, "late", when)
        assert out.status == "rejected", (when, out)
        assert out.stage == "test"
        assert (f"delegation 'late' expires at {when}, not after now "
                "(2026-01-01T00:00:00.000000Z)") in out.reason, out.reason
    assert rt.read(TRUST_TARGET)[0] == policy_before
    assert rt.backend.count() > count  # the rejections are logged, nothing applied
    # A delegation that was live when granted and has since expired ...
    out = _hand_built_grant(rt, "soon", "2026-01-01T00:00:01.000000Z", keys=("alice", "bob"))
    assert out.status == "applied", out
    clock.advance(hours=1)
    # ... stays as it is through another grant (nobody is asked to delete history) ...
    out = _hand_built_grant(rt, "carol", None, keys=("bob",))
    assert out.status == "applied", out
    soon = [d for d in rt.read(TRUST_TARGET)[0]["delegations"] if d["name"] == "soon"]
    assert soon and soon[0]["expires"] == "2026-01-01T00:00:01.000000Z"
    # ... is narrowed by a revocation (a stolen key must never be stuck behind it) ...
    out, notes = rt.revoke("alice", reason="laptop stolen")
    assert out.status == "applied", out
    assert "removed from delegation 'soon'" in notes
    # ... may not be given another past expiry ...
    out = _hand_built_grant(rt, "soon", "2026-01-01T00:30:00.000000Z", keys=("bob",))
    assert out.status == "rejected" and "delegation 'soon' expires at" in out.reason, out
    # ... and renewing it with a future expiry works.
    out = _hand_built_grant(rt, "soon", "2026-02-01T00:00:00.000000Z", keys=("bob",))
    assert out.status == "applied", out
    # A rollback restores what held before, an expired delegation included.
    policy, base = rt.read(TRUST_TARGET)
    dropped = {**policy, "delegations": [d for d in policy["delegations"]
                                         if d["name"] != "soon"]}
    drop = rt.submit(rt.sign(rt.propose("trust", TRUST_TARGET, value=dropped, base=base,
                                        author="operator", reasoning="drop soon"), "root"))
    assert drop.status == "applied", drop
    clock.advance(days=40)  # 'soon' (until 2026-02-01) has expired since
    assert [o.status for o in rt.rollback(patch=drop.patch_hash)] == ["applied"]
    assert rt.read(TRUST_TARGET)[0] == policy
    rt.close()


def test_a_hand_built_trust_patch_with_a_malformed_expiry_is_refused_by_name(
        tmp_path: Path) -> None:
    """An expiry that is no UTC time would make every later decision on that delegation
    fail to parse; the trust test refuses it by name (no crash), the policy unchanged."""
    rt = Runtime.init(tmp_path / "ws", clock=ManualClock())
    rt.keyring.new("alice")
    before = rt.read(TRUST_TARGET)[0]
    for when in ("tomorrow", "2027-13-45T00:00:00.000000Z"):
        out = _hand_built_grant(rt, "odd", when)
        assert out.status == "rejected" and out.stage == "test", out
        assert "delegation 'odd': expires is not a UTC time" in out.reason, out.reason
        assert "crashed" not in out.reason
    assert rt.read(TRUST_TARGET)[0] == before
    rt.close()
