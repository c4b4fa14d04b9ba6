"""Hostile tools at run time, in every language: they build, and their tests pass only if the
attack works (the workspace key read, the passphrase seen, the network reached) or the limits
give way. The sandbox holds, so each is rejected and nothing is registered or stored."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from .conftest import Ward, spec

OPENED = "opened"


def expect(value: object, expected: object) -> bytes:
    return json.dumps([{"input": value, "expected": expected}]).encode()


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OURO_KEY_PASSPHRASE", "hunter2")
    return "hunter2"


# -- reading the host's files --------------------------------------------------------------

C_OPEN = r"""#include <stdio.h>
int main(void) {
    char path[512] = {0};
    if (scanf(" \"%511[^\"]\"", path) != 1) return 2;
    FILE *f = fopen(path, "r");
    puts(f ? "\"opened\"" : "\"denied\"");
    return 0;
}
"""
ZIG_OPEN = """const std = @import("std");
pub fn main() void {
    var buf: [512]u8 = undefined;
    var iov = [_]std.os.wasi.iovec_t{.{ .base = &buf, .len = buf.len }};
    var n: usize = 0;
    _ = std.os.wasi.fd_read(0, &iov, 1, &n);
    const path = std.mem.trim(u8, buf[0..n], " \\n\\"");
    var fd: std.os.wasi.fd_t = undefined;
    const errno = std.os.wasi.path_open(3, .{}, path.ptr, path.len, .{}, .{ .FD_READ = true },
        .{}, .{}, &fd);
    const out: []const u8 = if (errno == .SUCCESS) "\\"opened\\"\\n" else "\\"denied\\"\\n";
    var o = [_]std.os.wasi.ciovec_t{.{ .base = out.ptr, .len = out.len }};
    _ = std.os.wasi.fd_write(1, &o, 1, &n);
}
"""
PY_OPEN = """import json, sys
path = json.loads(sys.stdin.read())
try:
    open(path, 'rb').read(1); r = 'opened'
except Exception as e:
    r = 'denied'
print(json.dumps(r))
"""


@pytest.mark.parametrize(
    ("language", "source", "runtime"),
    [("c", C_OPEN, None), ("zig", ZIG_OPEN, None), ("python", PY_OPEN, "micropython"),
     ("python", PY_OPEN, "cpython")],
    ids=["c", "zig", "micropython", "cpython"],
)
@pytest.mark.parametrize("target", ["key", "passwd", "hidden-tests"])
def test_a_tool_cannot_read_host_files(ward: Ward, language: str, source: str,
                                       runtime: str | None, target: str) -> None:
    path = {"key": str(ward.key_path), "passwd": "/etc/passwd",
            "hidden-tests": "tests/cases.json"}[target]
    tool = spec(language, source, runtime=runtime, tests=expect(path, OPENED))
    ward.refuses_spec(tool, "tests", r'got "denied"')


WAT_PREOPENS = """(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $pre (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "etc/passwd")
  (data (i32.const 200) "\\"opened\\"\\n")
  (func (export "_start") (local $fd i32) (local $found i32)
    (local.set $fd (i32.const 3))
    (loop $l
      (if (i32.eqz (call $pre (local.get $fd) (i32.const 0))) (then (local.set $found (i32.const 1))))
      (if (i32.eqz (call $open (local.get $fd) (i32.const 0) (i32.const 64) (i32.const 10)
                     (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 0)))
        (then (local.set $found (i32.const 1))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $fd) (i32.const 64))))
    (if (local.get $found) (then
      (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 9))
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))))
"""


def test_a_wat_tool_finds_no_preopened_directory(ward: Ward) -> None:
    tool = spec("wat", WAT_PREOPENS, tests=expect(1, OPENED))
    ward.refuses_spec(tool, "tests", r"must print one JSON value|no JSON|got")


# -- the environment -----------------------------------------------------------------------

C_ENV = r"""#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *v = getenv("OURO_KEY_PASSPHRASE");
    printf("\"%s\"\n", v ? v : (argc > 1 ? argv[1] : "unset"));
    return 0;
}
"""
PY_ENV = """import json
try:
    import os
    v = os.environ.get('OURO_KEY_PASSPHRASE') if hasattr(os, 'environ') else os.getenv('OURO_KEY_PASSPHRASE')
except Exception:
    v = None
print(json.dumps(v or 'unset'))
"""


@pytest.mark.parametrize(
    ("language", "source", "runtime"),
    [("c", C_ENV, None), ("python", PY_ENV, "micropython"), ("python", PY_ENV, "cpython")],
    ids=["c", "micropython", "cpython"],
)
def test_a_tool_cannot_see_the_host_environment(ward: Ward, passphrase: str, language: str,
                                               source: str, runtime: str | None) -> None:
    tool = spec(language, source, runtime=runtime, tests=expect(1, passphrase))
    ward.refuses_spec(tool, "tests", r'got "unset"')


# -- the network ---------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[object] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join()


PY_NET = """import json, sys
port = json.loads(sys.stdin.read())
try:
    import socket
    s = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', port)); r = 'connected'
except Exception as e:
    r = 'refused'
print(json.dumps(r))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_a_tool_cannot_reach_the_network(ward: Ward, listener: tuple[int, list[object]],
                                         runtime: str) -> None:
    port, accepted = listener
    tool = spec("python", PY_NET, runtime=runtime, tests=expect(port, "connected"))
    ward.refuses_spec(tool, "tests", r'got "refused"')
    assert accepted == []


# -- exhaustion ----------------------------------------------------------------------------

SPIN_WAT = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
START_SPIN_WAT = """(module (memory (export "memory") 1)
  (func $spin (loop $l (br $l))) (start $spin) (func (export "_start")))"""
GROW_WAT = """(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"""
FLOOD_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 64))
    (loop $l (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))"""
C_SPIN = "int main(void) { volatile unsigned long i = 0; for (;;) i++; }\n"
C_MALLOC = """#include <stdlib.h>
#include <stdio.h>
int main(void) {
    for (;;) { char *p = malloc(1 << 20); if (!p) { fputs("out of memory\\n", stderr); return 1; }
               p[0] = 1; }
}
"""
C_RECURSE = """int depth(int n) { volatile char pad[256]; pad[0] = (char)n; return depth(n + 1) + pad[0]; }
int main(void) { return depth(0); }
"""
ZIG_SPIN = "pub fn main() void { var i: u64 = 0; while (true) { i +%= 1; std.mem.doNotOptimizeAway(i); } }\nconst std = @import(\"std\");\n"


@pytest.mark.parametrize(
    ("language", "source", "runtime", "match"),
    [
        ("wat", SPIN_WAT, None, r"FuelExhausted"),
        ("wat", START_SPIN_WAT, None, r"FuelExhausted"),
        ("wat", GROW_WAT, None, r"MemoryLimitExceeded"),
        ("wat", FLOOD_WAT, None, r"OutputTooLarge"),
        ("c", C_SPIN, None, r"FuelExhausted"),
        ("c", C_MALLOC, None, r"MemoryLimitExceeded|FuelExhausted"),
        ("c", C_RECURSE, None, r"ToolCrashed.*stack"),
        ("zig", ZIG_SPIN, None, r"FuelExhausted"),
        ("python", "while True:\n    pass\n", "micropython", r"FuelExhausted"),
        ("python", "x = bytearray(1 << 30)\n", "micropython", r"MemoryLimitExceeded"),
        ("python", "while True:\n    print('A' * 1000)\n", "micropython", r"OutputTooLarge"),
        ("python", "while True:\n    pass\n", "cpython", r"DeadlineExceeded"),
        ("python", "x = bytearray(1 << 30)\n", "cpython", r"MemoryLimitExceeded"),
        ("python", "import sys\nwhile True:\n    sys.stdout.write('A' * 1000)\n", "cpython",
         r"OutputTooLarge"),
    ],
    ids=["wat-spin", "wat-start-spin", "wat-grow", "wat-flood", "c-spin", "c-malloc",
         "c-recursion", "zig-spin", "mp-spin", "mp-alloc", "mp-flood", "cpy-spin",
         "cpy-alloc", "cpy-flood"],
)
def test_exhaustion_hits_a_limit_and_nothing_is_stored(ward: Ward, language: str, source: str,
                                                       runtime: str | None, match: str) -> None:
    tool = spec(language, source, runtime=runtime, tests=expect(1, "done"))
    ward.refuses_spec(tool, ("limits", "tests"), match)
