"""Hostile Zig tools at build time: @embedFile, @import and @cInclude of files that are not
the tool's own, computed or escaped paths, assembler .incbin. Without the source check, Zig's
own package rule refuses embeds outside the tool (and this Zig has no @cImport); the jail
hides everything else all the same (see test_build_jail.py)."""

from __future__ import annotations

import pytest

from .conftest import Ward, spec

MAIN = """pub fn main() void {
    const w = std.os.wasi;
    var iov = [_]w.ciovec_t{.{ .base = data.ptr, .len = data.len }};
    var n: usize = 0;
    _ = w.fd_write(1, &iov, 1, &n);
}
"""


def zig_tool(decl: str) -> str:
    return 'const std = @import("std");\n' + decl + "\n" + MAIN


@pytest.mark.parametrize(
    ("decl", "match"),
    [
        ('const data = @embedFile("{key}");', r"@embedFile names an absolute path"),
        ('const data = @embedFile("../tests/cases.json");', r"@embedFile names a path outside"),
        ('const data = @embedFile("\\x2fetc/passwd");', r"@embedFile names an absolute path"),
        ('const path = "{key}";\nconst data = @embedFile(path);',
         r"@embedFile does not name a literal path"),
        ('const data = @embedFile("/etc/" ++ "passwd");',
         r"@embedFile does not name a literal path"),
        ('const evil = @import("{home}/evil.zig");\nconst data = "";',
         r"@import names an absolute path"),
        ('const evil = @import("../../evil.zig");\nconst data = "";',
         r"@import names a path outside"),
        ('const c = @cImport({{ @cInclude("{key}"); }});\nconst data = "";',
         r"@cInclude names an absolute path"),
        ('comptime {{ asm (".incbin \\"{key}\\""); }}\nconst data = "";', r"\.incbin"),
        ('const data = @embedFile(\n    // a comment between\n    "{key}");',
         r"@embedFile names an absolute path"),
    ],
    ids=["embed-abs", "embed-hidden-tests", "embed-escaped", "embed-const", "embed-concat",
         "import-abs", "import-dotdot", "cinclude-abs", "asm-incbin", "embed-split"],
)
def test_zig_source_reaching_outside_the_tool_is_refused(ward: Ward, decl: str,
                                                        match: str) -> None:
    from pathlib import Path

    source = zig_tool(decl.format(key=ward.key_path, home=Path.home()))
    ward.refuses_spec(spec("zig", source), "build", match)


def test_a_c_header_of_a_zig_tool_is_checked_as_c(ward: Ward) -> None:
    source = zig_tool('const c = @cImport({ @cInclude("glue.h"); });\nconst data = "";')
    header = f'#include "{ward.key_path}"\n'.encode()
    ward.refuses_spec(spec("zig", source, extra={"src/glue.h": header}), "build",
                      r"src/glue\.h:1: #include names an absolute path")


@pytest.mark.usefixtures("no_source_check")
def test_without_the_source_check_zig_refuses_an_embed_outside_the_package(ward: Ward) -> None:
    source = zig_tool(f'const data = @embedFile("{ward.key_path}");')
    ward.refuses_spec(spec("zig", source), "build", r"embed of file outside package path")


@pytest.fixture
def no_source_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ouroboros.capabilities.skills.builders.check_sources",
                        lambda language, files: None)
