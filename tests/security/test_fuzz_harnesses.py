"""The atheris harnesses (fuzz/) stay runnable: each one's ``test_one`` over its seed
inputs and the crash inputs kept in fuzz/crashes/, without fuzzing or instrumentation
(``make fuzz`` fuzzes; docs/security.md "Input handling")."""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))


@pytest.fixture
def harness(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(FUZZ))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # workspaces a harness makes
    module = importlib.import_module(request.param)
    for state in ("_RUNTIME", "_STATE"):  # one workspace per test, under tmp_path
        if hasattr(module, state):
            monkeypatch.setattr(module, state, None)
    yield module
    for state in ("_RUNTIME", "_STATE"):
        held = getattr(module, state, None)
        for item in held if isinstance(held, tuple) else (held,):
            close = getattr(item, "close", None)
            if callable(close):
                close()


def test_every_harness_is_listed() -> None:
    assert {"fuzz_json_input", "fuzz_submit", "fuzz_flux", "fuzz_otlp", "fuzz_sanitizer",
            "fuzz_text", "fuzz_settings"} <= set(TARGETS)


@pytest.mark.parametrize("harness", TARGETS, indirect=True)
def test_the_harness_holds_on_its_seeds_and_kept_crashes(harness: ModuleType) -> None:
    from _harness import kept_crashes

    inputs = list(harness.seeds())
    assert inputs, "a harness needs seeds"
    crashes = list(kept_crashes(harness.__name__.removeprefix("fuzz_")))
    for data in inputs + crashes:
        if harness.__name__ == "fuzz_submit":
            harness.test_one(data, always_verify=True)
        else:
            harness.test_one(data)


@pytest.mark.parametrize("harness", ["fuzz_mcp"], indirect=True)
def test_the_mcp_harness_searches_real_tools(harness: ModuleType) -> None:
    """`search_tools` was left out of the MCP harness; it now runs over indexed tools, so
    a fuzzed query reaches the ranking, not an empty index."""
    import json

    from ouroboros.interfaces.mcp import catalogue

    assert "search_tools" in harness.READ_ONLY
    search = catalogue.BUILTINS["search_tools"]
    found = search.run(harness._services(), search.args.model_validate(
        {"query": "add up integers"}), "fuzz")
    assert found["results"][0]["tool_id"] == "sum_ints", json.dumps(found)[:400]


@pytest.mark.parametrize("harness", ["fuzz_flux"], indirect=True)
def test_the_flux_harness_holds_the_wasm_engine_to_the_reference(
        harness: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential harness compared the reference VM with the pre-decoded and compiled
    paths only; the wasm engine (what `ouro flux run` uses) must give the same result too:
    a wasm engine that differs in any field fails on the seeds."""
    from dataclasses import replace

    from ouroboros.capabilities.flux.wasm import WasmRunner

    class Differs(WasmRunner):
        def __init__(self, field: str) -> None:
            super().__init__()
            self.field, self.runs = field, 0

        def run(self, *args: object, **kwargs: object) -> object:
            self.runs += 1
            got = super().run(*args, **kwargs)  # type: ignore[arg-type]
            changed = {"output": (*got.output, 1), "channels": (*got.channels, 0),
                       "halted": not got.halted, "trap": "bad_jump", "cycles": got.cycles + 1,
                       "steps": got.steps + 1}
            return replace(got, **{self.field: changed[self.field]})

    seeds = harness.seeds()
    for field in ("output", "channels", "halted", "trap", "cycles", "steps"):
        wasm = Differs(field)
        monkeypatch.setattr(harness, "_WASM", wasm)
        with pytest.raises(AssertionError):
            for data in seeds:
                harness.test_one(data)
        assert wasm.runs == 1, field
