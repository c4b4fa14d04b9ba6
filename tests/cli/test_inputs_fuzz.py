"""The parsers behind the CLI, under hypothesis: every input either parses to a value the
ledger can hold or is refused with a UsageError — nothing else escapes, nothing is stored.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouroboros.interfaces.cli.errors import CliError
from ouroboros.interfaces.json_input import MAX_DEPTH, MAX_SAFE_INT, loads_strict
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.errors import OuroError, UsageError

from .clikit import run

FAST = settings(max_examples=200, deadline=None)
SLOW = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT)
    # a double from 2^53 to 1e21 is refused: its canonical form is an unsafe integer
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not 2**53 <= abs(f) < 1e21)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=4),
    max_leaves=30)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_parse_to_a_storable_value_or_a_usage_error(data: bytes) -> None:
    try:
        value = loads_strict(data, "input")
    except UsageError as e:
        assert e.message.startswith("input ")
        return
    canonical_bytes(value)  # what parses can be stored: no NaN, no huge int, no surrogate


@FAST
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused(text: str) -> None:
    with contextlib.suppress(UsageError):
        loads_strict(text, "input")


@FAST
@given(json_values)
def test_valid_documents_round_trip(value: object) -> None:
    assert loads_strict(json.dumps(value), "v") == value


@FAST
@given(st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=4), st.data())
def test_duplicate_keys_are_always_refused(obj: dict[str, object], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items())
    text = "{" + body + f", {json.dumps(key)}: 0" + "}"
    with pytest.raises(UsageError, match="duplicate key"):
        loads_strict(text, "v")


@pytest.mark.parametrize("text", [
    "NaN", "[Infinity]", '{"a": -Infinity}', "1e400", "-1e999", "9" * 5000, "9007199254740992",
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "[" * 100_000, '"\\ud800"', '{"\\udfff": 1}',
    "", "   ", "\ufeff", '{"a": 1} {"b": 2}', "{'a': 1}", '{"a": 1,}',
])
def test_documents_the_ledger_cannot_hold_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        loads_strict(text, "v")


def test_depth_limit_is_exact() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_strict(ok, "v") is not None
    with pytest.raises(UsageError, match="nested more than"):
        loads_strict("[" + ok + "]", "v")


@FAST
@given(data=st.binary(max_size=300))
def test_flux_program_loader_never_leaks_an_exception(data: bytes, tmp_path_factory:
                                                      pytest.TempPathFactory) -> None:
    from ouroboros.interfaces.cli.flux import load_image

    path = tmp_path_factory.mktemp("flux") / "p.fasm"
    path.write_bytes(data)
    try:
        load_image(path)
    except CliError as e:
        assert e.exit_code in (1, 2)


@FAST
@given(magic=st.sampled_from([b"FLUX", b"464c5558"]), rest=st.binary(max_size=200))
def test_flux_images_with_the_magic_and_garbage_are_refused_cleanly(
        magic: bytes, rest: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    from ouroboros.interfaces.cli.flux import load_image

    path = tmp_path_factory.mktemp("flux") / "p.bin"
    path.write_bytes(magic + (rest.hex().encode() if magic != b"FLUX" else rest))
    with contextlib.suppress(OuroError):
        load_image(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fz") / "ws"
    assert run("init", "--home", str(home)).code == 0
    assert run("key", "new", "alice", "--home", str(home)).code == 0
    assert run("trust", "grant", "alice", "--types", "prompt", "--home", str(home)).code == 0
    return home


def _state(home: Path) -> str:
    return str(run("state", "--json", "--home", str(home)).json()["state_hash"])


@SLOW
@given(data=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"payload": st.text(max_size=40),
                                        "payloadType": st.text(max_size=40),
                                        "signatures": st.lists(st.dictionaries(
                                            st.sampled_from(["keyid", "sig"]),
                                            st.text(max_size=20)), max_size=2)}
                                       ).map(lambda d: json.dumps(d).encode())))
def test_a_submitted_envelope_of_garbage_stores_nothing(data: bytes, workspace: Path,
                                                        tmp_path_factory: pytest.TempPathFactory
                                                        ) -> None:
    before = _state(workspace)
    path = tmp_path_factory.mktemp("env") / "e.json"
    path.write_bytes(data)
    r = run("patch", "submit", str(path), "--json", "--home", str(workspace))
    assert r.code in (2, 3), r.describe()
    assert r.stderr == "" and ("error" in r.json() or r.json()["status"] == "rejected")
    assert _state(workspace) == before


def test_a_payload_with_duplicate_keys_is_rejected_not_applied(workspace: Path,
                                                               tmp_path: Path) -> None:
    """The signed bytes say one thing to a reader and another to a parser: refused."""
    from ouroboros.kernel import Runtime
    from ouroboros.kernel.dsse import envelope_to_dict

    with Runtime.open(workspace) as rt:
        patch = rt.propose("prompt", "agents/a/prompt", value="x", reasoning="r",
                           author="alice")
        payload = patch.canonical().replace(b'"author":"alice"',
                                            b'"author":"alice","author":"root"')
        envelope = rt.sign(patch, "alice")
        envelope.payload = payload
        envelope.signatures.clear()
        rt.sign(envelope, "alice")
        path = tmp_path / "dup.json"
        path.write_text(json.dumps(envelope_to_dict(envelope)))
    before = _state(workspace)
    r = run("patch", "submit", str(path), "--json", "--home", str(workspace))
    assert r.code == 3 and r.json()["status"] == "rejected", r.describe()
    assert _state(workspace) == before


@SLOW
@given(cut=st.integers(0, 40_000), scribble=st.binary(min_size=0, max_size=64))
def test_a_truncated_or_scribbled_ledger_is_an_integrity_error(
        cut: int, scribble: bytes, workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("ledger") / "ws"
    shutil.copytree(workspace, home)
    db = home / "ledger.db"
    data = db.read_bytes()
    db.write_bytes(data[:cut] + scribble)
    for command in (["state"], ["log"], ["verify"], ["replay"], ["pending"]):
        r = run(*command, "--json", "--home", str(home))
        assert r.code in (0, 1, 2), r.describe()
        assert r.stderr == ""
        if r.code:
            assert r.json()["error"]["code"] in ("integrity", "workspace_missing", "usage"), \
                r.describe()


@SLOW
@given(data=st.binary(max_size=2000))
def test_telemetry_ingest_of_any_bytes_reports_never_crashes(
        data: bytes, workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("tel") / "events.jsonl"
    path.write_bytes(data)
    r = run("telemetry", "ingest", str(path), "--json", "--home", str(workspace))
    assert r.code in (0, 1, 2) and r.stderr == "", r.describe()
    report = r.json()
    assert "error" in report or report["records"] >= report["stored"]


@SLOW
@given(text=st.text(max_size=400))
def test_a_proposal_diff_of_any_text_is_refused_or_gated(
        text: str, workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("diff") / "x.diff"
    if any("\ud800" <= c <= "\udfff" for c in text):
        path.write_bytes(b"\xff" + text.encode("utf-8", "replace"))
    else:
        path.write_text(text)
    r = run("proposals", "new", "--diff", str(path), "--title", "t", "--json", "--home",
            str(workspace))
    assert r.code in (2, 3, 4) and r.stderr == "", r.describe()
