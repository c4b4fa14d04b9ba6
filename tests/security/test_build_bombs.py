"""Builds that try to exhaust the host: compile-time loops and blow-ups, huge outputs, deep
nesting, and build scripts that would fork-bomb if anything ran them. Each ends inside its
limits with a clear refusal, and nothing is registered or stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ouroboros.capabilities.skills.building import BuildLimits

from .conftest import Ward, spec, write_tool_dir

# Short enough that a bomb costs seconds; the honest builds below still pass under them.
BOMB_LIMITS = BuildLimits(timeout_s=4, memory_bytes=1 << 30, file_bytes=8 << 20)


@pytest.fixture
def bombed(ward: Ward) -> Ward:
    ward.store.build_limits = BOMB_LIMITS
    return ward


def test_exponential_c_macro_is_stopped_by_the_limits(bombed: Ward) -> None:
    macros = "".join(f"#define A{i} (A{i - 1} + A{i - 1})\n" for i in range(1, 41))
    source = f"#define A0 x\n{macros}int main(void) {{ int x = 1; return A40; }}\n"
    bombed.refuses_spec(spec("c", source), "build",
                        r"took longer than 4 s|more than 4 s of CPU time|out of memory|"
                        r"allocation failed")


def test_a_module_past_the_file_cap_is_refused(bombed: Ward) -> None:
    # Twelve distinct copies of the tool's own 1 MiB file (#embed is fast): the linker cannot
    # size its 12 MiB output past the 8 MiB cap, aborts, and the refusal names the cap.
    blob = bytes((i * 7 + 1) % 251 + 1 for i in range(1 << 20))
    arrays = "".join(f'static unsigned char b{i}[] = {{\n#embed "blob.bin" prefix({i},)\n}};\n'
                     for i in range(12))
    use = " + ".join(f"b{i}[argc * {i + 1}]" for i in range(12))
    source = arrays + f"int main(int argc, char **argv) {{ (void)argv; return {use}; }}\n"
    bombed.refuses_spec(spec("c", source, extra={"src/blob.bin": blob}), "build",
                        r"wrote a file larger than the 8388608-byte cap|died of SIG\w+; .* "
                        r"files of up to 8388608 bytes")


def test_a_self_including_c_file_is_refused(bombed: Ward) -> None:
    bombed.refuses_spec(spec("c", '#include "main.c"\nint main(void) { return 0; }\n'),
                        "build", r"nested too deeply|include nested")


def test_an_endless_zig_comptime_loop_is_killed_at_the_deadline(bombed: Ward) -> None:
    source = ("pub fn main() void {\n    comptime {\n        @setEvalBranchQuota(4000000000);\n"
              "        var i: u64 = 0;\n        while (true) i += 1;\n    }\n}\n")
    # the wall clock or the CPU budget, whichever the compiler's threads reach first
    bombed.refuses_spec(spec("zig", source), "build",
                        r"the Zig compiler (took longer than 4 s|used more than 4 s of CPU time)")


def test_a_huge_zig_array_is_stopped_by_the_memory_cap(bombed: Ward) -> None:
    source = "export var big: [256 << 20]u8 = @splat(1);\npub fn main() void {}\n"
    bombed.refuses_spec(spec("zig", source), "build",
                        r"memory allocation failure|out of memory|took longer than 4 s|"
                        r"more than 4 s of CPU time")


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_deeply_nested_python_fails_its_syntax_check(bombed: Ward, runtime: str) -> None:
    source = "x = " + "(" * 20000 + "1" + ")" * 20000 + "\nprint(x)\n"
    bombed.refuses_spec(spec("python", source, runtime=runtime), "build",
                        rf"does not compile on {runtime}")


def test_a_wat_module_without_start_is_refused(bombed: Ward) -> None:
    bombed.refuses_spec(spec("wat", '(module (memory (export "memory") 1))'), "build",
                        r"exports no _start")


def test_a_wat_module_asking_for_host_functions_is_refused(bombed: Ward) -> None:
    wat = ('(module (import "env" "system" (func $s (param i32) (result i32)))\n'
           '  (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))\n'
           '  (func (export "_start") (drop (call $s (i32.const 0)))))')
    bombed.refuses_spec(spec("wat", wat), "build", r"outside WASI: env\.system")


def test_a_wat_module_importing_host_memory_is_refused(bombed: Ward) -> None:
    wat = '(module (import "env" "memory" (memory 1)) (func (export "_start")))'
    bombed.refuses_spec(spec("wat", wat), "build", r"outside WASI: env\.memory")


# -- build scripts are never run ---------------------------------------------------------

FORK_BOMB = ":(){ :|:& };:"


def test_a_makefile_is_never_run(bombed: Ward, tmp_path: Path) -> None:
    marker = tmp_path / "makefile-ran"
    tool = write_tool_dir(tmp_path / "tool", "c",
                          '#include "generated.h"\nint main(void) { return GENERATED; }\n')
    (tool / "src" / "Makefile").write_text(
        f"all:\n\ttouch {marker}\n\techo '#define GENERATED 0' > generated.h\n\t{FORK_BOMB}\n")
    bombed.refuses_dir(tool, "build", r"generated\.h' file not found")
    assert not marker.exists()


def test_a_build_zig_is_never_run(bombed: Ward, tmp_path: Path) -> None:
    marker = tmp_path / "build-zig-ran"
    tool = write_tool_dir(tmp_path / "tool", "zig",
                          'const g = @embedFile("generated.txt");\n'
                          "pub fn main() void { _ = g; }\n")
    (tool / "src" / "build.zig").write_text(
        'const std = @import("std");\npub fn build(b: *std.Build) void {\n'
        f'    _ = b.addSystemCommand(&.{{ "sh", "-c", "touch {marker}; {FORK_BOMB}" }});\n}}\n')
    bombed.refuses_dir(tool, "build", r"generated\.txt.*(FileNotFound|not found|unable)")
    assert not marker.exists()


def test_a_setup_py_is_never_run(bombed: Ward, tmp_path: Path) -> None:
    marker = tmp_path / "setup-py-ran"
    tool = write_tool_dir(tmp_path / "tool", "python",
                          "import generated\nprint(generated.VALUE)\n", runtime="micropython")
    (tool / "src" / "setup.py").write_text(
        f"import os\nopen({str(marker)!r}, 'w').close()\nwhile True: os.fork()\n")
    (tool / "src" / "generated_build.py").write_text("VALUE = 1\n")
    bombed.refuses_dir(tool, "tests", r"ImportError|no module named")
    assert not marker.exists()


def test_a_build_rs_is_never_run(bombed: Ward, tmp_path: Path) -> None:
    # build.rs would write OUT_DIR/gen.rs; the tool can only reach it through env!, refused.
    tool = spec("rust", 'include!(concat!(env!("OUT_DIR"), "/gen.rs"));\nfn main() {}\n',
                extra={"src/build.rs": f'fn main() {{ std::process::Command::new("sh")'
                                       f'.args(["-c", "{FORK_BOMB}"]).status().unwrap(); }}\n'
                       .encode()})
    bombed.refuses_spec(tool, "build", r"env! \(the build's environment")


def test_honest_tools_still_build_under_the_bomb_limits(bombed: Ward) -> None:
    c = spec("c", '#include <stdio.h>\nint main(void) { puts("\\"pwned\\""); return 0; }\n',
             name="honest_c")
    assert bombed.store.add(c).tool_id == "honest_c"
    py = spec("python", 'print(\'"pwned"\')\n', name="honest_py", runtime="micropython",
              tests=json.dumps([{"input": 1, "expected": "pwned"}]).encode())
    assert bombed.store.add(py).tool_id == "honest_py"
