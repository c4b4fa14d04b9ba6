"""What the atheris harnesses (fuzz/, docs/security.md "Input handling") found, each kept
as a test that failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ouroboros.interfaces.json_input import check_parsed, loads_strict
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.errors import InvalidPatch, UsageError
from ouroboros.kernel.gates import GateResult, SchemaGate, Submission, _effective_schema
from ouroboros.kernel.ops import inverse_of
from ouroboros.kernel.runtime import Runtime, default_gates_config
from ouroboros.kernel.textfold import fold
from ouroboros.kernel.trust import GATES_TARGET

from .kernelkit import ouro

# fuzz_json_input: a double in [2^53, 1e21) has an integer literal as its RFC 8785 form
# ("1e17" -> "100000000000000000"), which every JSON reader here reads back as an integer
# outside ±2^53-1, which the canonical form refuses.
UNREPLAYABLE = ["1e17", "88888888808888888888.8888", "-9007199254740992.0", "9.99e20"]


@pytest.mark.parametrize("text", UNREPLAYABLE)
def test_a_number_whose_canonical_form_is_an_unsafe_integer_is_refused_as_input(
        text: str) -> None:
    with pytest.raises(UsageError, match=r"outside ±2\^53-1") as refused:
        loads_strict(f'{{"w": {text}}}', "value file v.json")
    assert "value file v.json" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(UsageError, match=r"outside ±2\^53-1"):
        check_parsed({"w": float(text)}, "the arguments")


@pytest.mark.parametrize("value", [1e21, -1e300, 9007199254740991.0, 1e15, 0.5e-7])
def test_numbers_that_read_back_as_themselves_are_still_accepted(value: float) -> None:
    assert loads_strict(repr(value)) == value
    assert loads_strict(canonical_bytes(value)) == value


@pytest.mark.parametrize("text", UNREPLAYABLE)
def test_the_canonical_form_refuses_a_double_it_would_write_as_an_unsafe_integer(
        text: str) -> None:
    with pytest.raises(InvalidPatch, match=r"outside ±2\^53-1"):
        canonical_bytes({"a": [1, {"w": float(text)}]})


@pytest.mark.parametrize("op", [{"value": {"weight": 1e17}},
                                {"json_patch": [{"op": "add", "path": "/w", "value": 1e17}]}])
def test_a_patch_the_ledger_could_not_replay_is_refused_and_nothing_is_stored(
        tmp_path: Path, op: dict[str, object]) -> None:
    """Before: the patch was applied, and from then on `ouro verify` (and every replay)
    failed with "value is not canonical JSON": one submit bricked the workspace."""
    with Runtime.init(tmp_path / "ws") as rt:
        rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                              reasoning="r")
        before = rt.backend.count()
        with pytest.raises(InvalidPatch, match=r"outside ±2\^53-1"):
            rt.propose_and_submit(type="routing", target="agents/a/routing", reasoning="r",
                                  **op)
        assert rt.backend.count() == before
    with Runtime.open(tmp_path / "ws") as fresh:
        assert fresh.verify().events == before
        assert fresh.replay().consistent


# fuzz_text: fold was not idempotent for 91 code points (Cyrillic т → ᴛ → t, н → ʜ → h,
# Cherokee, Canadian syllabics, Ethiopic …): a step gave a letter that folds further.
FOLDED_SHORT = "\u0442\u043d\u0432\u04a2\u0197\u0276\u03c4\u03da\u044b\u048a\u050d\u0609\u1240\u13b1\u13cb\u1403"


@pytest.mark.parametrize("ch", FOLDED_SHORT)
def test_folding_a_look_alike_reaches_its_letter_at_once(ch: str) -> None:
    once = fold(ch)
    assert fold(once) == once, (ch, once, fold(once))


def test_folding_is_idempotent_for_every_letter_of_the_confusable_scripts() -> None:
    """Latin extended to Cherokee and Canadian syllabics, letter by letter (the whole of
    Unicode takes half a minute; every code point held when the fix was made)."""
    bad = []
    for code in [*range(0x80, 0x700), *range(0x1200, 0x1800), *range(0x1d00, 0x1e00)]:
        once = fold(chr(code))
        if fold(once) != once:
            bad.append(f"U+{code:04X}")
    assert not bad, bad


# fuzz_mcp: a resource URI urlsplit cannot read ("ouro://]x", "ouro://[::1") escaped
# read_resource as a bare ValueError ("Invalid IPv6 URL"), not the UsageError it documents.
@pytest.mark.parametrize("uri", ["ouro://]tate/agents/a/routing", "ouro://[state", "ouro://[::1"])
def test_a_resource_uri_that_does_not_parse_is_a_usage_error(tmp_path: Path, uri: str) -> None:
    from ouroboros.interfaces.http.services import Services
    from ouroboros.interfaces.mcp.catalogue import read_resource

    Runtime.init(tmp_path / "ws").close()
    services = Services(tmp_path / "ws", pool_size=1)
    try:
        with pytest.raises(UsageError, match="not a resource URI") as refused:
            read_resource(services, uri)
        assert "resources/list" in str(refused.value)
    finally:
        services.close()


# fuzz_submit: a root-signed delete of kernel/gates was applied; every later rejection
# then failed with KeyError('kernel/gates') (the breaker reads its config from there), so
# no patch could be refused with a reason again.
@pytest.mark.parametrize("op", [{"delete": True},
                                {"json_patch": [{"op": "replace", "path": "", "value": None}]}])
@pytest.mark.parametrize(("kind", "target"), [("gates", "kernel/gates"),
                                              ("trust", "kernel/trust")])
def test_the_kernels_own_config_cannot_be_deleted(tmp_path: Path, op: dict[str, object],
                                                  kind: str, target: str) -> None:
    with Runtime.init(tmp_path / "ws") as rt:
        before, events = rt.value(target), rt.backend.count()
        out = rt.submit(rt.sign(rt.propose(kind, target, reasoning="r", **op), "root"))
        assert (out.status, out.stage) == ("rejected", "schema"), out
        assert f"{target} cannot be deleted" in out.reason
        assert rt.backend.count() == events + 1  # the rejection, nothing else
        assert rt.value(target) == before
        refused = rt.propose_and_submit(type="routing", target="agents/a/routing",
                                        value={"w": "not a number"}, reasoning="r")
        assert (refused.status, refused.stage) == ("rejected", "test"), refused
        rt.verify()


# fuzz_sanitizer: `curl -u USER` lost the quotes around USER on every pass, so a text of
# nested quotes never reached a fixed point within the sanitizer's passes (not idempotent).
@pytest.mark.parametrize("text", ['-u"["\u0430 "" ""', '-u "x"y "" "" "" "" ""',
                                  "--user '\"'a'\"' '' ''"])
def test_sanitizing_a_quoted_curl_user_is_a_fixed_point(text: str) -> None:
    from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

    sanitizer = Sanitizer()
    once = sanitizer.text(text)
    assert sanitizer.text(once) == once


def test_a_quoted_curl_password_is_still_redacted_and_the_user_kept() -> None:
    from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

    out = Sanitizer().text('curl -u "alice":"s3cretPassw0rd" https://example.com/x')
    assert "s3cretPassw0rd" not in out and "<secret:password>" in out
    assert '-u "alice":' in out


class _SchemaGateBeforeTheFix(SchemaGate):
    """The schema gate as it was before the fix above: a root delete of `kernel/gates`
    applied. Only this builds the ledgers that fix left as they were."""

    def check(self, sub: Submission) -> GateResult:
        result = super().check(sub)
        if result.reason.endswith("cannot be deleted: the kernel reads it on every submit; "
                                  "set a new value instead"):
            assert sub.patch is not None and sub.patch_type is not None
            old = sub.state.values.get(sub.patch.target)
            sub.old_value, sub.new_value = old, None
            sub.inverse = inverse_of(sub.patch.op, old, None)
            sub.schema = _effective_schema(sub, sub.patch_type)
            return GateResult.accepted()
        return result


def _gates_deleted_the_old_way(home: Path) -> tuple[str, object]:
    assert ouro("init", home=home).returncode == 0
    assert ouro("agent", "add", "alice", home=home).returncode == 0  # before the delete
    with Runtime.open(home) as rt:
        before = rt.value(GATES_TARGET)
        rt.gates = [_SchemaGateBeforeTheFix() if isinstance(g, SchemaGate) else g
                    for g in rt.gates]
        out = rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, reasoning="oops",
                                           delete=True), "root"))
        assert out.status == "applied" and rt.value(GATES_TARGET) is None, out
        return out.patch_hash, before


# A ledger that already holds such a delete (written before the fix) still broke every
# rejection with KeyError('kernel/gates'): `patch submit`, `agent add`, exit 1 "a bug".
@pytest.mark.parametrize("repair", ["set", "rollback"])
def test_a_workspace_whose_gates_were_deleted_before_the_fix_refuses_until_repaired(
        tmp_path: Path, repair: str) -> None:
    home = tmp_path / "ws"
    deleted, before = _gates_deleted_the_old_way(home)
    blocked = ("kernel/gates has no value (a delete applied before such deletes were "
               "refused): every patch is refused until a root-signed gates patch sets it")
    with Runtime.open(home) as rt:
        events = rt.backend.count()
        for value in ({"w": 1}, {"w": "not a number"}):
            out = rt.propose_and_submit(type="routing", target="agents/a/routing",
                                        value=value, reasoning="r")
            assert (out.status, out.stage) == ("rejected", "schema"), out
            assert out.reason.startswith(blocked), out.reason
        forged = rt.propose_and_submit(type="routing", target="agents/a/routing",
                                       value={"w": 1}, reasoning="r", keys=[])
        assert (forged.status, forged.stage) == ("rejected", "signature"), forged
        assert rt.backend.count() == events + 3  # three rejections, nothing applied
        assert rt.value("agents/a/routing") is None and rt.value(GATES_TARGET) is None
        assert all(b["rejections"] == 0 for b in rt.breakers().values())  # nobody charged
    (tmp_path / "v.json").write_text('{"w": 2}')
    env = tmp_path / "e.json"
    assert ouro("patch", "new", "--type", "routing", "--target", "agents/a/routing",
                "--value", str(tmp_path / "v.json"), "--reason", "r", "-o", str(env),
                home=home).returncode == 0
    assert ouro("patch", "sign", str(env), "--key", "runtime", home=home).returncode == 0
    r = ouro("patch", "submit", str(env), home=home)
    assert r.returncode == 3 and blocked in " ".join(r.stdout.split()), r
    for agent in ("bob", "alice"):  # a new agent; one whose delegation is already there
        r = ouro("agent", "add", agent, home=home)
        assert r.returncode == 3 and "unexpected" not in r.stderr, (agent, r)
        assert blocked in " ".join((r.stdout + r.stderr).split()), (agent, r)
    for command in (["state"], ["verify"], ["replay"], ["log"], ["pending"]):
        r = ouro(*command, home=home)
        assert r.returncode == 0, (command, r)
    with Runtime.open(home) as rt:
        if repair == "set":
            before = default_gates_config()
            out = rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, reasoning="restore",
                                               value=before), "root"))
        else:
            [out] = rt.rollback(patch=deleted)
        assert out.status == "applied", out
        assert rt.value(GATES_TARGET) == before
        refused = rt.propose_and_submit(type="routing", target="agents/a/routing",
                                        value={"w": "not a number"}, reasoning="r")
        assert (refused.status, refused.stage) == ("rejected", "test"), refused
        assert rt.propose_and_submit(type="routing", target="agents/a/routing",
                                     value={"w": 3}, reasoning="r").status == "applied"
        rt.verify()
        assert rt.replay().consistent
