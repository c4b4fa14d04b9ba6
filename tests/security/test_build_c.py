"""Hostile C tools at build time: every way to make the compiler read a file that is not the
tool's own. The source check refuses each before a compiler runs; the tests at the end turn
that check off and show the jail alone still holds (and the compiler's own record of what it
read is checked too). Nothing is ever registered or stored."""

from __future__ import annotations

import pytest

from .conftest import Ward, cases, spec

MAIN = 'int main(void) { puts("{}"); return 0; }\n'


def c_tool(body: str) -> str:
    return "#include <stdio.h>\n" + body + "\n" + MAIN


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('#include "{key}"', r"#include names an absolute path"),
        ('static const char k[] = {{\n#embed "{key}"\n, 0}};', r"#embed names an absolute path"),
        ('#include </etc/passwd>', r"#include names an absolute path"),
        ('#include "../../../../../../../../{key}"', r"#include names a path outside"),
        ('static const char t[] = {{\n#embed "../tests/cases.json"\n, 0}};',
         r"#embed names a path outside"),
        ('#define SECRET "{key}"\n#include SECRET', r"does not name a literal path"),
        ("#include __FILE__", r"does not name a literal path"),
        ('%:include "{key}"', r"#include names an absolute path"),
        ('#inc\\\nlude "{key}"', r"#include names an absolute path"),
        ('??=include "{key}"', r"#include names an absolute path"),
        ('# /* a comment */ include "{key}"', r"#include names an absolute path"),
        ('#include_next "{key}"', r"#include_next names an absolute path"),
        ('#import "{key}"', r"#import names an absolute path"),
        ('#if __has_include("{home}/.ssh/id_rsa")\nint ssh = 1;\n#endif',
         r"__has_include names an absolute path"),
        ('__asm__(".section .data.k,\\"\\",@\\n.incbin \\"{key}\\"\\n");', r"\.incbin"),
        ('#pragma GCC dependency "{key}"', r"#pragma dependency"),
        ('#include "C:\\\\keys\\\\root.key"', r"absolute path"),
        ('#include "~/.ssh/id_rsa"', r"absolute path"),
    ],
    ids=["include-abs", "embed-abs", "include-angle-abs", "include-dotdot",
         "embed-hidden-tests", "include-macro", "include-self", "digraph", "line-splice",
         "trigraph", "comment-in-directive", "include-next", "import", "has-include-probe",
         "asm-incbin", "pragma-dependency", "drive-letter", "tilde"],
)
def test_c_source_reaching_outside_the_tool_is_refused(ward: Ward, body: str, match: str) -> None:
    from pathlib import Path

    source = c_tool(body.format(key=ward.key_path, home=Path.home()))
    ward.refuses_spec(spec("c", source), "build", match)


def test_a_raw_string_cannot_hide_a_directive_behind_a_fake_comment(ward: Ward) -> None:
    # The raw string holds `")/*`: a lexer that took `"x("` for a whole string would see a
    # comment start and skip the next line, which the compiler reads as a real #include.
    source = c_tool(f'const char *s = R"x(")/*)x";\n#include "{ward.key_path}"\n// */')
    ward.refuses_spec(spec("c", source), "build", r":3: #include names an absolute path")


def test_a_byte_order_mark_does_not_hide_the_first_directive(ward: Ward) -> None:
    source = b"\xef\xbb\xbf" + f'#include "{ward.key_path}"\n'.encode() + MAIN.encode()
    ward.refuses_spec(spec("c", source), "build", r"#include names an absolute path")


def test_a_header_the_tool_includes_is_checked_too(ward: Ward) -> None:
    evil = f'#embed "{ward.key_path}"\n'.encode()
    source = c_tool('static const char k[] = {\n#include "data.inc"\n, 0};')
    ward.refuses_spec(spec("c", source, extra={"src/data.inc": evil}), "build",
                      r"src/data\.inc:1: #embed names an absolute path")


# -- the jail alone ----------------------------------------------------------------------


@pytest.fixture
def no_source_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the source check off, to show the jail holds by itself."""
    monkeypatch.setattr("ouroboros.capabilities.skills.builders.check_sources",
                        lambda language, files: None)


@pytest.fixture
def no_compiler_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the check of the compiler's list of files read off as well."""
    monkeypatch.setattr("ouroboros.capabilities.skills.builders.check_compiler_record",
                        lambda room, zig: None)


@pytest.mark.usefixtures("no_source_check")
def test_jail_alone_hides_the_workspace_key_from_include(ward: Ward) -> None:
    ward.refuses_spec(spec("c", c_tool(f'#include "{ward.key_path}"')), "build",
                      r"the C compiler \(zig cc\) failed.*(not found|no such file)")


EMBED_LENGTH = """#include <stdio.h>
static const char blob[] = {{ 0,
#embed "{path}"
}};
int main(void) {{ printf("%zu\\n", sizeof blob - 1); return 0; }}
"""


@pytest.mark.usefixtures("no_source_check")
def test_an_embed_of_a_missing_file_is_refused_by_the_compiler_record(ward: Ward) -> None:
    tool = spec("c", EMBED_LENGTH.format(path=ward.key_path))
    ward.refuses_spec(tool, "build", r"left no list of the files it read")


@pytest.mark.usefixtures("no_source_check", "no_compiler_record")
def test_jail_alone_hides_the_workspace_key_from_embed(ward: Ward) -> None:
    # clang expands an #embed of a missing file to nothing, so the build succeeds: the case
    # pins the key's real length, which only a tool that read the key could print.
    size = len(ward.key_path.read_bytes())
    tool = spec("c", EMBED_LENGTH.format(path=ward.key_path), tests=cases((1, size)))
    ward.refuses_spec(tool, "tests", rf"expected {size}, got 0")


@pytest.mark.usefixtures("no_source_check", "no_compiler_record")
def test_jail_alone_hides_hidden_tests_from_embed(ward: Ward) -> None:
    # The build sees src/ only: a tool cannot read its own hidden cases to pass them.
    raw = cases((1, 1))
    tool = spec("c", EMBED_LENGTH.format(path="../tests/cases.json"),
                tests=cases((1, len(raw))))
    ward.refuses_spec(tool, "tests", r"got 0")


@pytest.mark.usefixtures("no_source_check")
def test_jail_alone_stops_an_incbin_split_across_string_literals(ward: Ward) -> None:
    # `".inc" "bin"` passes any text search for incbin; the assembler joins the literals.
    body = f'__asm__(".section .data.k,\\"\\",@\\n.inc" "bin \\"{ward.key_path}\\"\\n");'
    ward.refuses_spec(spec("c", c_tool(body)), "build", r"could not find incbin file")


@pytest.mark.usefixtures("no_source_check")
def test_jail_alone_hides_the_home_directory(ward: Ward) -> None:
    ward.refuses_spec(spec("c", c_tool('#include "/root/.bashrc"\n#include "/etc/passwd"')),
                      "build", r"failed.*(not found|no such file)")


@pytest.mark.usefixtures("no_source_check")
def test_compiler_record_refuses_a_file_outside_tool_and_toolchain(ward: Ward) -> None:
    # /dev/null exists in the jail and compiles as an empty header: the compiler's own list
    # of what it read (its depfile) names it, and the build is refused.
    ward.refuses_spec(spec("c", c_tool('#include "/dev/null"')), "build",
                      r"read /dev/null, which is neither the tool's nor the toolchain's")
