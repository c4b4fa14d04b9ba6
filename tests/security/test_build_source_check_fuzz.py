"""The source check on arbitrary input: it never crashes (a crash would be a traceback and a
build let through), and it refuses every absolute or escaping path however it is spelled."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.skills.building.includes import check_sources, path_problem
from ouroboros.capabilities.skills.errors import BuildFailed

SOURCE = {"c": "src/main.c", "zig": "src/main.zig", "rust": "src/main.rs"}
segment = st.text(alphabet=st.characters(blacklist_characters='/\\"<>\n\r\0', codec="utf-8"),
                  min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(SOURCE)), st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_check(language: str, data: bytes) -> None:
    with contextlib.suppress(BuildFailed):
        check_sources(language, {SOURCE[language]: data})


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, min_size=1, max_size=4))
def test_a_plain_relative_path_is_accepted_everywhere(parts: list[str]) -> None:
    path = "/".join(parts)
    if path.startswith("~") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        return
    check_sources("c", {"src/main.c": f'#include "{path}"\n'.encode()})
    check_sources("zig", {"src/main.zig": f'const d = @embedFile("{path}");\n'.encode()})
    check_sources("rust", {"src/main.rs": f'static D: &[u8] = include_bytes!("{path}");\n'
                                          .encode()})


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, min_size=0, max_size=3), st.lists(segment, min_size=0, max_size=3),
       st.sampled_from(["/", "../", "a/../../", "~/", "C:/", "\\\\host\\"]))
def test_an_escaping_path_is_refused_in_every_language(before: list[str], after: list[str],
                                                       escape: str) -> None:
    if escape in ("../", "a/../../"):  # escapes from anywhere in the path
        path = "/".join(before) + ("/" if before else "") + escape + "/".join(after)
    else:  # absolute: only at the start
        path = escape + "/".join(before + after)
    if path_problem(path) is None:
        pytest.fail(f"{path!r} was accepted")
    for language, text in (("c", f'#include "{path}"\n'),
                           ("zig", f'const d = @embedFile("{path}");\n'),
                           ("rust", f'static D: &[u8] = include_bytes!("{path}");\n')):
        with pytest.raises(BuildFailed):
            check_sources(language, {SOURCE[language]: text.encode()})
