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
