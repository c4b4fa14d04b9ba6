"""Every ``ouro`` command, discovered from the Typer app, against the CLI contract.

Commands are found by walking the app (lazy groups included), so a command added later
is checked without touching this file: help text on every parameter, ``--json`` on every
command, documented exit codes, JSON errors on stdout with a clean stderr, and no
traceback for any hostile value of any parameter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouroboros.interfaces.cli.errors import CODES

from .clikit import (
    DOCUMENTED,
    Files,
    Hung,
    Leaf,
    Result,
    argv_for,
    choices_of,
    env,
    hostile_values,
    kind_of,
    leaves,
    run,
)

LEAVES = leaves()
#: Commands that run until stopped or for minutes by design: only their help, a bad
#: option and a missing workspace are exercised here (they have their own tests).
LONG_RUNNING = {"demo", "serve", "mcp"}
#: Heavy defaults a fuzzed run should not pay for (the hostile value still replaces them).
BASE = {"telemetry generate": ["--days", "0.01", "--rate", "60"],
        "improve run": ["--once"]}  # without it, a valid workspace runs until stopped


def ids(leaf: Leaf) -> str:
    return leaf.name


def assert_contract(r: Result, as_json: bool) -> None:
    """Documented exit code, no traceback, never the `internal` error; under --json one
    JSON document on stdout and nothing on stderr."""
    assert r.code in DOCUMENTED, r.describe()
    assert "Traceback" not in r.stdout + r.stderr, r.describe()
    assert "unexpected error" not in r.stderr, r.describe()
    if as_json:
        assert r.stderr == "", r.describe()
        doc = r.json()
        if r.code == 2:
            assert isinstance(doc, dict) and "error" in doc, r.describe()
        if isinstance(doc, dict) and "error" in doc:
            error = doc["error"]
            assert error["code"] in CODES and error["code"] != "internal", r.describe()
            assert error["exit_code"] == r.code and error["message"], r.describe()


def test_the_walk_finds_the_commands_of_every_capability() -> None:
    names = {leaf.name for leaf in LEAVES}
    for expected in ("init", "state", "patch submit", "tool run", "flux evolve",
                     "telemetry eval", "proposals list", "agent add", "demo"):
        assert expected in names


@pytest.mark.parametrize("leaf", LEAVES, ids=ids)
def test_help_names_every_parameter(leaf: Leaf) -> None:
    r = run(*leaf.path, "--help")
    assert r.code == 0, r.describe()
    text = r.stdout
    with env(COLUMNS="400"):  # choices wrap inside the help box at 80 columns
        wide = run(*leaf.path, "--help").stdout
    assert "<bool>" not in text, f"{leaf.name}: a flag shows a <bool> metavar"
    assert all(len(line) <= 80 for line in text.splitlines()), f"{leaf.name}: help > 80 cols"
    assert (leaf.command.help or "").strip(), f"{leaf.name} has no help text"
    for param in leaf.params():
        assert (getattr(param, "help", None) or "").strip(), (
            f"`ouro {leaf.name}`: {param.name} has no help text")
        if kind_of(param) == "choice":
            assert all(str(c) in wide for c in choices_of(param)), (
                f"`ouro {leaf.name}`: choices of {param.name} are not listed")


@pytest.mark.parametrize("leaf", LEAVES, ids=ids)
def test_every_command_takes_json(leaf: Leaf) -> None:
    assert leaf.has_option("--json"), f"`ouro {leaf.name}` has no --json option"


@pytest.mark.parametrize("leaf", LEAVES, ids=ids)
def test_an_unknown_option_is_a_usage_error(leaf: Leaf, home: Path) -> None:
    r = run(*leaf.path, "--no-such-option", "--json")
    assert r.code == 2, r.describe()
    assert r.json()["error"]["code"] == "usage" and r.stderr == ""
    text = run(*leaf.path, "--no-such-option")
    assert text.code == 2 and text.stdout == "" and text.stderr.startswith("error: ")


@pytest.mark.parametrize("leaf", LEAVES, ids=ids)
def test_a_missing_workspace_is_a_usage_error(leaf: Leaf, files: Files,
                                              tmp_path: Path) -> None:
    if not leaf.has_option("--home") or leaf.name in ("init", "demo"):
        pytest.skip("this command does not read a workspace")
    args = argv_for(leaf, files, base=["--home", str(tmp_path / "nowhere"), "--json"])
    r = run(*args)
    assert_contract(r, as_json=True)
    # 2, or 1 where the placeholder input is refused first (a FLUX file that does not
    # assemble is exit 1 by the flux contract); never success, never a new workspace.
    assert r.code in (1, 2), r.describe()
    assert not (tmp_path / "nowhere").exists(), "a read command created a workspace"


def _cases() -> list[tuple[Leaf, str, str]]:
    """(command, parameter, kind) for every parameter a hostile value can be given to."""
    out = []
    for leaf in LEAVES:
        if leaf.name in LONG_RUNNING:
            continue
        for param in leaf.params():
            kind = kind_of(param)
            if kind != "flag" and param.name not in ("as_json",):
                out.append((leaf, param.name or "", kind))
    return out


CASES = _cases()


def _run_hostile(leaf: Leaf, param_name: str, value: str, files: Files, as_json: bool) -> None:
    base = [*BASE.get(leaf.name, [])] + (["--json"] if as_json and leaf.has_option("--json")
                                         else [])
    args = argv_for(leaf, files, {param_name: value}, base)
    try:
        r = run(*args, timeout=60)
    except Hung as e:
        pytest.fail(f"{e}: a hostile value was not refused (add a bound to the option)")
    assert_contract(r, as_json and leaf.has_option("--json"))


@pytest.mark.parametrize(("leaf", "param", "kind"), CASES,
                         ids=[f"{c[0].name}:{c[1]}" for c in CASES])
def test_hostile_values_never_crash(leaf: Leaf, param: str, kind: str, home: Path,
                                    files: Files) -> None:
    """One representative per hostile class, for every parameter of every command."""
    click_param = next(p for p in leaf.params() if p.name == param)
    values = hostile_values(kind, files, click_param)
    for value in values[:4] if kind != "path" else values:
        _run_hostile(leaf, param, value, files, as_json=True)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_parameters_never_crash(data: st.DataObject, home: Path, files: Files) -> None:
    """Random (command, parameter, value) triples, text or JSON mode, including values
    hypothesis invents: arbitrary text, numbers of any size, JSON documents."""
    leaf, param, kind = data.draw(st.sampled_from(CASES))
    click_param = next(p for p in leaf.params() if p.name == param)
    invented = {
        "int": st.one_of(st.integers().map(str), st.floats().map(repr), st.text(max_size=30)),
        "float": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                           st.integers().map(str), st.text(max_size=30)),
        "choice": st.text(max_size=20),
        "path": st.sampled_from([str(p) for p in files.made.values()]),
        "text": st.one_of(st.text(max_size=200), st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda kids: st.lists(kids, max_size=3)
            | st.dictionaries(st.text(max_size=5), kids, max_size=3),
            max_leaves=20).map(json.dumps)),
    }[kind]
    value = data.draw(st.one_of(st.sampled_from(hostile_values(kind, files, click_param)),
                                invented))
    if "\x00" in value or (value.startswith("-") and value != "-"):
        value = "x" + value  # argv cannot carry NUL; a leading dash would be an option
    _run_hostile(leaf, param, value, files, as_json=data.draw(st.booleans()))


def test_version() -> None:
    r = run("--version")
    assert r.code == 0 and re.fullmatch(r"ouro \d+\.\d+\.\S+ \(Python 3\.\d+\.\d+\)\n", r.stdout)


def test_bare_group_prints_help_and_exits_2() -> None:
    r = run("tool")
    assert r.code == 2 and "Usage: ouro tool" in r.stdout


def test_typo_suggests_lazy_commands() -> None:
    r = run("tol")
    assert r.code == 2 and "Did you mean 'tool'?" in r.stderr


def test_lazy_help_lines_match_the_groups_own_help() -> None:
    import typer as typer_mod

    from ouroboros.interfaces.cli.main import LAZY_GROUPS

    for name, lazy in LAZY_GROUPS.items():
        group = typer_mod.main.get_group(lazy.loader())
        assert (group.help or "").strip() == lazy.help, f"`ouro {name}` help drifted"


def test_help_text_in_brackets_is_shown_not_eaten_as_markup() -> None:
    """`[tool.ouroboros]` in a help line is text, not a rich markup tag to drop."""
    for args in (("config", "--help"), ("--help",)):
        r = run(*args)
        assert r.code == 0 and "(ouro.toml, [tool.ouroboros])" in r.stdout, r.describe()


@pytest.mark.parametrize("when", ["999999999d", "9999999999d", "99999999999999999999h"])
def test_an_expiry_past_the_calendar_is_a_usage_error(when: str, home: Path) -> None:
    before = run("trust", "show", "--json").stdout
    r = run("trust", "grant", "alice", "--types", "prompt", "--expires", when, "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "usage", r.describe()
    assert "--expires" in r.json()["error"]["message"]
    assert run("trust", "show", "--json").stdout == before


def test_patch_new_refuses_an_envelope_no_later_command_could_read(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`patch new --text` took a 50 MB file and wrote a 66 MiB envelope that `patch sign`
    and `patch submit` then refused (their input limit is 64 MiB): it is refused at once,
    and nothing is written. (The limit is lowered here so the test needs no 50 MB file.)"""
    from ouroboros.interfaces.cli import kernel_cmds

    monkeypatch.setattr(kernel_cmds, "MAX_INPUT_BYTES", 4096)
    text, out = tmp_path / "big.txt", tmp_path / "env.json"
    text.write_text("x" * 3500)  # under the limit itself; base64 and the JSON push it over
    r = run("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
            str(text), "--reason", "r", "-o", str(out), "--home", str(home), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "usage", r.describe()
    assert "patch sign" in r.json()["error"]["message"] and not out.exists()
    text.write_text("x" * 1000)  # a value whose envelope fits is written as before
    r = run("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
            str(text), "--reason", "r", "-o", str(out), "--home", str(home), "--json")
    assert r.code == 0 and out.stat().st_size <= 4096, r.describe()
