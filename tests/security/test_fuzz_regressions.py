"""What the atheris harnesses (fuzz/, docs/security.md "Input handling") found, each kept
as a test that failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ouroboros.interfaces.json_input import check_parsed, loads_strict
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.errors import InvalidPatch, UsageError
from ouroboros.kernel.runtime import Runtime
from ouroboros.kernel.textfold import fold

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
