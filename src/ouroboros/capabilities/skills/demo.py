"""The skills part of ``ouro demo``: offline, on the workspace it is given."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ToolRejected
from .governance import attach_tools, open_store
from .runtimes import cpython_ready
from .spec import load_tool_dir
from .starter import starter_dirs

if TYPE_CHECKING:
    from ouroboros.kernel import Runtime

SAMPLES: dict[str, Any] = {
    "checksum": "hello world",
    "sum_ints": [19, 23],
    "word_stats": "The cat sat. The cat ran!",
    "unit_convert": {"value": 42.195, "from": "km", "to": "mi"},
    "json_path": {"data": {"orders": [{"id": 7, "total": 12.5}, {"id": 9, "total": 3}]},
                  "path": "$.orders[*].total"},
    "csv_to_json": {"csv": "city,pop\nOslo,709000\nBergen,291000\n", "numbers": True},
    "date_normalise": "November 23, 2026",
}
SPIN = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'


def skills_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    store = open_store(rt)
    use_cpython = cpython_ready()
    if not use_cpython:
        say("CPython-in-WASM is not compiled on this machine yet (a one-off ~2 min, cached "
            "afterwards; `make test` does it): this run skips csv_to_json and date_normalise.")
    for path in starter_dirs():
        spec = load_tool_dir(path)
        if spec.language == "python" and (spec.runtime or "cpython") == "cpython" \
                and not use_cpython:
            continue
        v = store.add(spec)
        t = v.meta["tests"]
        say(f"Added {v.tool_id}@{v.fingerprint} ({v.language} → {v.runtime}): "
            f"{t['passed']}/{t['total']} cases passed ({t['hidden']} hidden), "
            "registered by a signed `skill` patch.")
    for v in store.list():
        result = store.run(v.tool_id, SAMPLES[v.tool_id])
        shown = json.dumps(result.output)
        shown = shown if len(shown) < 90 else shown[:87] + "..."
        say(f"run {v.tool_id}: {shown}  [{result.elapsed_ms:.1f} ms in the sandbox]")

    parent = store.get("unit_convert")
    files = parent.files()
    source = files["src/main.py"].decode().replace(
        '"mi": 1609.344}', '"mi": 1609.344, "nmi": 1852.0}')
    cases = json.loads(files["tests/cases.json"])
    cases.append({"name": "nautical", "input": {"value": 1, "from": "nmi", "to": "m"},
                  "expected": {"value": 1852.0, "unit": "m"}})
    child = store.add(_respec(parent, source, cases))
    say(f"Mutation: unit_convert learns nautical miles → {child.fingerprint} "
        f"(parent {child.parent}); 1 nmi = {store.run('unit_convert', {'value': 1, 'from': 'nmi', 'to': 'm'}).output}.")

    broken = source.replace("    return v\n\n\ndef from_kelvin", "    return v + 1\n\n\ndef from_kelvin")
    try:
        store.add(_respec(child, broken, cases))
    except ToolRejected as e:
        say(f"A careless mutation is rejected ({e.reason}): {e.detail}")
    lineage = " → ".join(v.fingerprint for v in store.lineage("unit_convert"))
    say(f"Lineage of unit_convert: {lineage}; the rejected candidate left nothing behind.")

    try:
        store.add(_spin_spec())
    except ToolRejected as e:
        say(f"A tool that never stops is contained ({e.reason}): {e.detail}")
    out = attach_tools(rt, store, "analyst", ["checksum", "json_path", "unit_convert"])
    if out is not None:
        say(f"Attaching tools to agent 'analyst' is a `tools` patch signed by root: "
            f"{out.status} at seq {out.seq}.")


def _respec(parent: Any, source: str, cases: list[dict[str, Any]]) -> Any:
    from .spec import ToolSpec

    files = dict(parent.files(include_hidden=True))
    hidden = [c for c in json.loads(files["tests/cases.json"]) if c.get("hidden")]
    visible = [c for c in cases if not c.get("hidden")]
    files["src/main.py"] = source.encode()
    files["tests/cases.json"] = json.dumps(visible + hidden, indent=1).encode()
    return ToolSpec(parent.tool_id, parent.description, parent.language, files,
                    runtime=parent.runtime if parent.runtime == "micropython" else None)


def _spin_spec() -> Any:
    from .spec import ToolSpec

    return ToolSpec("spinner", "loops forever", "wat", {
        "src/main.wat": SPIN.encode(),
        "tests/cases.json": b'[{"input": 1, "expected": 1}]',
    })
