"""What a newcomer met in their first hour (issue 16), each as the behaviour it is now."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .clikit import env, run

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples/flux"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert run("init", "--home", str(ws)).code == 0
    return ws


def test_tool_add_of_a_missing_directory_is_a_usage_error(home: Path) -> None:
    r = run("tool", "add", str(home.parent / "missing"), "--json", "--home", str(home))
    assert r.code == 2 and r.json()["error"]["code"] == "not_found" and r.stderr == ""
    assert run("tool", "list", "--json", "--home", str(home)).json() == []


def test_log_of_an_unknown_kind_is_a_usage_error(home: Path) -> None:
    r = run("log", "--kind", "Nope", "--home", str(home))
    assert r.code == 2 and "kinds here: Genesis" in r.stderr
    assert run("log", "--kind", "PatchApplied", "--json", "--home", str(home)).json() == []


def test_flux_run_refuses_missing_inputs_unless_padded() -> None:
    r = run("flux", "run", str(EXAMPLES / "sum2x.fasm"), "--input", "3", "--json")
    assert r.code == 2 and "reads 2 input(s)" in r.json()["error"]["message"]
    padded = run("flux", "run", str(EXAMPLES / "sum2x.fasm"), "--input", "3", "--pad-inputs",
                 "--json")
    assert padded.code == 0 and padded.json()["output"] == [3]


def test_eval_on_an_empty_window_says_the_window_is_empty(home: Path) -> None:
    r = run("telemetry", "eval", "--home", str(home))
    assert r.code == 0 and "no events in the 24 h window" in r.stdout
    assert "within its thresholds" not in r.stdout


@pytest.fixture
def with_findings(home: Path, tmp_path: Path) -> Path:
    events = tmp_path / "events.jsonl"
    assert run("telemetry", "generate", str(events), "--days", "1", "--rate", "200",
               "--fault", "web-search-timeouts").code == 0
    assert run("telemetry", "ingest", str(events), "--home", str(home)).code == 0
    return home


def test_eval_points_to_propose(with_findings: Path) -> None:
    r = run("telemetry", "eval", "--home", str(with_findings))
    assert r.code == 0 and "`ouro telemetry eval --propose`" in r.stdout


def test_a_failing_llm_keeps_the_rule_findings(with_findings: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: the endpoint refuses at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with env(OURO_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1", OURO_LLM_MODEL="m",
             OURO_LLM_API_KEY="k"):
        r = run("telemetry", "eval", "--llm", "--json", "--home", str(with_findings))
        text = run("telemetry", "eval", "--llm", "--home", str(with_findings))
    assert r.code == 1, r.describe()
    report = r.json()
    assert report["findings"] and report["llm_error"]["message"]
    assert text.code == 1 and "web_search" in text.stdout and "LLM analysis failed" in text.stdout


def test_version_and_completion_in_a_real_shell_process() -> None:
    ouro = [sys.executable, "-m", "ouroboros"]
    version = subprocess.run([*ouro, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("ouro ")
    script = subprocess.run([*ouro, "--show-completion", "bash"], capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0 and "_OURO_COMPLETE" in script.stdout
    base = {**os.environ, "_OURO_COMPLETE": "complete_bash"}
    for words, cword, expected in (("ouro to", "1", "tool"), ("ouro tool r", "2", "run"),
                                   ("ouro flux run x --engine ", "5", "reference")):
        r = subprocess.run([*ouro], env={**base, "COMP_WORDS": words, "COMP_CWORD": cword},
                           capture_output=True, text=True, timeout=60)
        assert expected in r.stdout.split(), (words, r.stdout, r.stderr)


def test_no_traceback_even_for_a_bug(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """An exception nobody anticipated: exit 1, the `internal` code, the traceback only
    with OURO_DEBUG=1."""
    from ouroboros.interfaces.cli import kernel_cmds

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(kernel_cmds, "_print_events", broken)
    r = run("log", "--home", str(home))
    assert r.code == 1 and "Traceback" not in r.stderr
    assert "unexpected error: ZeroDivisionError: a bug" in r.stderr
    as_json = run("log", "--home", str(home), "--json")  # the JSON path does not print events
    assert as_json.code == 0
    with env(OURO_DEBUG="1"):
        debug = run("log", "--home", str(home))
    assert debug.code == 1 and "Traceback" in debug.stderr


def test_json_error_for_a_bug_is_a_document(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    from ouroboros.kernel.runtime import Runtime

    def broken(self: object, *a: object, **k: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Runtime, "breakers", broken)
    r = run("breakers", "--json", "--home", str(home))
    assert r.code == 1 and r.stderr == ""
    assert r.json()["error"]["code"] == "internal"
    assert json.dumps(r.json())  # one document
