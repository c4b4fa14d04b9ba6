"""The builders that run as Python inside the jail: WAT assembly and the Python syntax check.

Run as a script (``python -I -B worker.py KIND ...``) in the build jail, never imported by the
host. It loads the few skills modules it needs (runtimes, sandbox and what they import) as a
bare package, without the capability's ``__init__`` (which pulls in the kernel). It answers
one JSON line on stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

SKILLS = Path(__file__).resolve().parents[1]
_CHECK = "import sys\ncompile(sys.stdin.read(), 'main.py', 'exec')\n"


def _skills_module(name: str) -> Any:
    if "_ouro_skills" not in sys.modules:
        package = types.ModuleType("_ouro_skills")
        package.__path__ = [str(SKILLS)]
        sys.modules["_ouro_skills"] = package
    return importlib.import_module(f"_ouro_skills.{name}")


def assemble_wat(source: str, out: str) -> dict[str, Any]:
    import wasmtime

    text = Path(source).read_bytes().decode("utf-8", "replace")
    try:
        wasm = wasmtime.wat2wasm(text)
    except wasmtime.WasmtimeError as e:
        return {"ok": False, "error": str(e)}
    Path(out).write_bytes(bytes(wasm))
    return {"ok": True}


def check_python(runtime: str, source: str, cache_dir: str) -> dict[str, Any]:
    runtimes = _skills_module("runtimes")
    sandbox = _skills_module("sandbox")
    errors = _skills_module("errors")
    rts = runtimes.Runtimes(cache_dir=Path(cache_dir))
    limits = sandbox.Limits(fuel=2_000_000_000, deadline_s=30.0)
    try:
        done = rts.execute(runtime, Path(source).read_bytes(), limits, source=_CHECK)
    except errors.SandboxError as e:
        return {"ok": False, "error": f"the syntax check did not finish: {e}"}
    return {"ok": done.exit_code == 0,
            "error": done.stderr.decode("utf-8", "replace").strip()}


def main(argv: list[str]) -> int:
    kind, *args = argv
    try:
        if kind == "wat":
            result = assemble_wat(*args)
        elif kind == "python":
            result = check_python(*args)
        else:
            result = {"ok": False, "error": f"unknown build kind {kind!r}"}
    except Exception as e:  # the answer is a message, never a traceback
        result = {"ok": False, "error": f"the builder failed: {type(e).__name__}: {e}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
