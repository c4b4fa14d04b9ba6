from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.skills import (
    SkillStore,
    ToolCrashed,
    ToolFailed,
    ToolNotFound,
    ToolRejected,
    ToolSpec,
)
from ouroboros.capabilities.skills.artifacts import compute_fingerprint
from ouroboros.capabilities.skills.builders import Built

from .conftest import SpecFactory, cases

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"


def leftovers(store: SkillStore) -> list[Path]:
    """Everything under tools/ except empty staging: what a rejection must not leave."""
    if not store.tools_dir.exists():
        return []
    staging = store.tools_dir / ".staging"
    return [p for p in store.tools_dir.rglob("*") if p != staging]


def test_add_registers_an_immutable_version_with_meta(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), hidden=((0, 0),))))
    assert v.path == store.tools_dir / "double" / "versions" / v.fingerprint
    meta = json.loads((v.path / "meta.json").read_text())
    assert meta["parent"] is None and meta["runtime"] == "micropython"
    assert meta["interpreter"].startswith("sha256:")
    assert meta["tests"] == {"passed": 2, "failed": 0, "total": 2, "hidden": 1}
    assert meta["embedding_model"] is None
    for rel, digest in meta["files"].items():
        assert store.blobs.get(digest) == (v.path / rel).read_bytes()


def test_adding_the_same_spec_twice_returns_the_same_version(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    spec = make_spec("double", source=DOUBLE, tests=cases((2, 4)))
    assert store.add(spec).fingerprint == store.add(spec).fingerprint
    assert len(store.versions("double")) == 1


def test_run_returns_output_and_updates_metrics(store: SkillStore, make_spec: SpecFactory) -> None:
    store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    assert store.run("double", 21).output == 42
    assert store.run("double", "ab").output == "abab"
    with pytest.raises(ToolFailed):
        store.run("double", None)
    m = store.get("double").meta["metrics"]
    assert m["uses"] == 3 and m["failures"] == 1
    assert m["p50_ms"] is not None and m["p95_ms"] >= m["p50_ms"] and m["last_used"]


def test_a_mutation_records_its_parent_and_lineage(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v1 = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    triple = DOUBLE.replace("2 *", "3 *")
    v2 = store.add(make_spec("double", source=triple, tests=cases((2, 6))))
    assert v2.parent == v1.fingerprint
    assert store.get("double").fingerprint == v2.fingerprint
    assert store.run("double", 1, fingerprint=v1.fingerprint).output == 2
    assert [v.fingerprint for v in store.lineage("double")] == [v1.fingerprint, v2.fingerprint]


def test_a_specialisation_under_a_new_name_keeps_cross_tool_lineage(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v1 = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    v2 = store.add(make_spec("double_str", source=DOUBLE, tests=cases(("a", "aa"))),
                   parent=v1.fingerprint)
    assert [v.tool_id for v in store.lineage("double_str")] == ["double", "double_str"]
    assert v2.parent == v1.fingerprint


def test_unknown_parent_is_rejected(store: SkillStore, make_spec: SpecFactory) -> None:
    with pytest.raises(ToolRejected, match="parent version deadbeefdeadbeef does not exist"):
        store.add(make_spec(), parent="deadbeefdeadbeef")
    assert leftovers(store) == []


def test_failing_visible_case_is_rejected_with_the_case(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected) as err:
        store.add(make_spec("double", source=DOUBLE, tests=cases((2, 5))))
    assert err.value.reason == "tests"
    assert "input 2 expected 5, got 4" in err.value.detail
    assert leftovers(store) == []


def test_failing_hidden_case_does_not_reveal_its_content(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected) as err:
        store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), hidden=((123, 999),))))
    assert "hidden" in err.value.detail
    assert "123" not in err.value.detail and "999" not in err.value.detail
    assert leftovers(store) == []


def test_files_for_a_mutating_llm_leave_out_hidden_cases(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), hidden=((7, 14),))))
    shown = json.loads(v.files()["tests/cases.json"])
    assert shown == [{"input": 2, "expected": 4}]
    assert len(json.loads(v.files(include_hidden=True)["tests/cases.json"])) == 2
    assert [c.input for c in v.cases()] == [2]


def test_python_syntax_error_is_a_build_rejection(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected) as err:
        store.add(make_spec(source="def broken(:\n"))
    assert err.value.reason == "build" and "SyntaxError" in err.value.detail
    assert leftovers(store) == []


def test_wat_that_does_not_assemble_is_rejected_with_the_assembler_output(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected) as err:
        store.add(make_spec(language="wat", source="(module (func $f (i32.bogus)))"))
    assert err.value.reason == "build" and "does not assemble" in err.value.detail
    assert "bogus" in err.value.detail
    assert leftovers(store) == []


def test_c_compile_error_is_rejected_with_the_compiler_output(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    src = "int main(void) { return undefined_thing; }\n"
    with pytest.raises(ToolRejected) as err:
        store.add(make_spec(language="c", source=src))
    assert err.value.reason == "build"
    assert "undefined_thing" in err.value.detail and "main.c" in err.value.detail
    assert leftovers(store) == []


def test_module_importing_non_wasi_host_functions_is_rejected(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    wat = '(module (import "env" "launch_missiles" (func)) (func (export "_start")))'
    with pytest.raises(ToolRejected, match=r"outside WASI: env\.launch_missiles"):
        store.add(make_spec(language="wat", source=wat))


def test_rust_without_the_wasm_target_says_how_to_fix(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    from ouroboros.capabilities.skills.builders import rust_target

    if rust_target() is not None:
        pytest.skip("this host can build rust for wasm32-wasip1")
    with pytest.raises(ToolRejected, match="rustup target add wasm32-wasip1"):
        store.add(make_spec(language="rust", source="fn main() {}"))


def test_tool_printing_no_json_fails_with_a_clear_error(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    with pytest.raises(ToolRejected, match="must print one JSON value"):
        store.add(make_spec(source="print('hello there')"))


def test_run_of_unknown_tool_says_how_to_list(store: SkillStore) -> None:
    with pytest.raises(ToolNotFound, match="ouro tool list"):
        store.run("nope", 1)


def test_test_reruns_every_case_including_hidden(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), hidden=((3, 6),))))
    report = store.test("double")
    assert report.passed and len(report.results) == 2
    assert report.to_json()["failed"] == 0


def test_set_embedding_writes_the_vector_and_model(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    store.set_embedding("double", v.fingerprint, b"\x00" * 16, "bge-small-en-v1.5")
    assert (v.path / "embedding.vec").read_bytes() == b"\x00" * 16
    assert store.get("double").meta["embedding_model"] == "bge-small-en-v1.5"


def test_error_cases_check_the_message(store: SkillStore, make_spec: SpecFactory) -> None:
    src = "import sys\nsys.stderr.write('nope: bad input\\n')\nsys.exit(1)\n"
    good = json.dumps([{"input": 1, "error": "bad input"}]).encode()
    bad = json.dumps([{"input": 1, "error": "something else"}]).encode()
    store.add(make_spec("erring", source=src, tests=good))
    with pytest.raises(ToolRejected, match="expected an error containing 'something else'"):
        store.add(make_spec("erring2", source=src, tests=bad))


def test_crashing_tool_is_typed(store: SkillStore, make_spec: SpecFactory) -> None:
    wat = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
    with pytest.raises(ToolRejected, match="ToolCrashed"):
        store.add(make_spec(language="wat", source=wat))
    with pytest.raises(ToolCrashed):
        raise ToolCrashed("x")


@settings(max_examples=30, deadline=None)
@given(
    files=st.dictionaries(
        st.sampled_from(["src/main.py", "src/util.py", "tests/cases.json", "tests/extra.json"]),
        st.binary(max_size=64),
    ),
    flip=st.integers(min_value=0, max_value=63),
)
def test_fingerprint_is_stable_and_covers_every_byte(files: dict[str, bytes], flip: int) -> None:
    files = {**files, "src/main.py": b"x", "tests/cases.json": b'[{"input":1,"expected":1}]'}
    spec = ToolSpec.__new__(ToolSpec)
    object.__setattr__(spec, "name", "t")
    object.__setattr__(spec, "description", "d")
    object.__setattr__(spec, "language", "python")
    object.__setattr__(spec, "files", files)
    built = Built("cpython", "v", "sha256:" + "0" * 64, None)
    fp = compute_fingerprint(spec, built)
    assert fp == compute_fingerprint(spec, built)
    other = Built("cpython", "v", "sha256:" + "1" * 64, None)
    assert compute_fingerprint(spec, other) != fp  # the interpreter is part of the identity
    path = sorted(files)[flip % len(files)]
    data = bytearray(files[path] or b"\x00")
    data[flip % len(data)] ^= 0x01
    object.__setattr__(spec, "files", {**files, path: bytes(data)})
    assert compute_fingerprint(spec, built) != fp


def test_calls_are_logged_then_folded_into_meta_on_read(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    v = store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    for i in range(5):
        store.run("double", i)
    assert (v.path / "calls.log").read_text().count("\n") == 5
    meta = store.get("double").meta
    assert meta["metrics"]["uses"] == 5 and not (v.path / "calls.log").exists()
    assert json.loads((v.path / "meta.json").read_text())["metrics"]["uses"] == 5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(min_value=0, max_value=1e4)), min_size=1,
                max_size=300))
def test_metrics_fold_counts_every_call(calls: list[tuple[bool, float]]) -> None:
    from ouroboros.capabilities.skills import metrics

    m = metrics.empty()
    for ok, ms in calls:
        m = metrics.record(m, ok, ms)
    assert m["uses"] == len(calls)
    assert m["failures"] == sum(1 for ok, _ in calls if not ok)
    assert m["p50_ms"] <= m["p95_ms"] <= max(round(ms, 3) for _, ms in calls[-200:])
    assert len(m["recent_ms"]) == min(len(calls), metrics.WINDOW)


def test_zig_tool_builds_with_the_ziglang_wheel(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    source = (Path(__file__).parent / "data" / "count_bytes.zig").read_text()
    v = store.add(make_spec("count_bytes", language="zig", source=source,
                            tests=cases(("abc", {"bytes": 5}))))
    assert v.runtime == "wasi" and v.meta["runtime_version"].startswith("ziglang")
    assert store.run("count_bytes", [1, 2]).output == {"bytes": 6}


def test_test_report_json_hides_hidden_inputs_by_default(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4), hidden=((31337, 62674),))))
    shown = json.dumps(store.test("double").to_json())
    assert "31337" not in shown and "62674" not in shown
    assert "31337" in json.dumps(store.test("double").to_json(include_hidden=True))


def test_concurrent_calls_keep_their_own_stdio_and_every_count(
    store: SkillStore, make_spec: SpecFactory
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.add(make_spec("double", source=DOUBLE, tests=cases((2, 4))))
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda i: store.run("double", i).output, range(40)))
    assert outputs == [2 * i for i in range(40)]
    assert store.get("double").meta["metrics"]["uses"] == 40


@pytest.mark.parametrize("victim", ["tool.wasm", "src/main.wat"])
def test_a_version_edited_on_disk_is_refused(
    store: SkillStore, make_spec: SpecFactory, victim: str
) -> None:
    from ouroboros.capabilities.skills import ToolCorrupt

    wat = (Path(__file__).parents[2] / "src/ouroboros/capabilities/skills/starter/sum_ints"
           / "src/main.wat").read_text()
    v = store.add(make_spec("sums", language="wat", source=wat, tests=cases(([1, 2], 3))))
    path = v.path / victim
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    fresh = SkillStore(store.root, runtimes=store.runtimes)
    with pytest.raises(ToolCorrupt, match=f"{victim} does not match its recorded hash"):
        fresh.run("sums", [1, 2])
