"""Hostile tool directories: links, hard links, devices, FIFOs, sockets and sheer size, in
any place of the directory (the directory itself included). Each is refused before anything
is read into a spec, and nothing is registered or stored."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from ouroboros.capabilities.skills.building.sources import MAX_ENTRIES, read_tree, write_tree
from ouroboros.capabilities.skills.errors import BuildFailed, MalformedTool

from .conftest import Ward, is_root, write_tool_dir

C_MAIN = '#include <stdio.h>\nint main(void) { puts("1"); return 0; }\n'


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    return write_tool_dir(tmp_path / "tool", "c", C_MAIN)


def test_the_tool_directory_itself_may_not_be_a_symlink(ward: Ward, tool: Path,
                                                        tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(tool)
    ward.refuses_dir(link, "malformed", r"innocent is a symlink")


def test_src_may_not_be_a_symlink_to_an_outside_folder(ward: Ward, tool: Path,
                                                       tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main.c").write_text(f'#include "{ward.key_path}"\n' + C_MAIN)
    for f in (tool / "src").iterdir():
        f.unlink()
    (tool / "src").rmdir()
    (tool / "src").symlink_to(outside)
    ward.refuses_dir(tool, "malformed", r"src is a symlink")


def test_a_source_file_may_not_be_a_symlink_to_a_key(ward: Ward, tool: Path) -> None:
    (tool / "src" / "key.h").symlink_to(ward.key_path)
    ward.refuses_dir(tool, "malformed", r"src/key\.h is a symlink")


def test_tests_may_not_be_a_symlink(ward: Ward, tool: Path, tmp_path: Path) -> None:
    target = tmp_path / "cases.json"
    target.write_text((tool / "tests" / "cases.json").read_text())
    (tool / "tests" / "cases.json").unlink()
    (tool / "tests" / "cases.json").symlink_to(target)
    ward.refuses_dir(tool, "malformed", r"cases\.json is a symlink")


def test_meta_may_not_be_a_symlink(ward: Ward, tool: Path, tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    target.write_text((tool / "meta.json").read_text())
    (tool / "meta.json").unlink()
    (tool / "meta.json").symlink_to(target)
    ward.refuses_dir(tool, "malformed", r"meta\.json is a symlink")


def test_a_symlink_anywhere_is_refused_even_where_nothing_is_read(ward: Ward,
                                                                 tool: Path) -> None:
    (tool / "docs").mkdir()
    (tool / "docs" / "passwd").symlink_to("/etc/passwd")
    ward.refuses_dir(tool, "malformed", r"docs/passwd is a symlink")


def test_a_dangling_or_looping_symlink_is_refused(ward: Ward, tool: Path) -> None:
    (tool / "src" / "loop").symlink_to("loop")
    ward.refuses_dir(tool, "malformed", r"src/loop is a symlink")


def test_a_hard_link_to_a_key_is_refused(ward: Ward, tool: Path) -> None:
    os.link(ward.key_path, tool / "src" / "key.h")
    ward.refuses_dir(tool, "malformed", r"src/key\.h has 2 hard links")


def test_a_fifo_is_refused_without_blocking(ward: Ward, tool: Path) -> None:
    os.mkfifo(tool / "src" / "data.h")  # opening it for reading would block forever
    ward.refuses_dir(tool, "malformed", r"src/data\.h is a FIFO")


def test_a_socket_is_refused(ward: Ward, tool: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tool / "src" / "sock"))
        ward.refuses_dir(tool, "malformed", r"src/sock is a socket")


@pytest.mark.skipif(not is_root(), reason="creating a device node needs CAP_MKNOD")
def test_a_device_node_is_refused(ward: Ward, tool: Path) -> None:
    os.mknod(tool / "src" / "zero.h", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    ward.refuses_dir(tool, "malformed", r"src/zero\.h is a character device")


def test_a_directory_with_too_many_entries_is_refused(ward: Ward, tool: Path) -> None:
    junk = tool / "junk"
    junk.mkdir()
    for i in range(MAX_ENTRIES + 1):
        (junk / f"f{i}").touch()
    ward.refuses_dir(tool, "malformed", rf"more than {MAX_ENTRIES} entries")


def test_a_deeply_nested_directory_is_refused(ward: Ward, tool: Path) -> None:
    deep = tool / "src"
    for _ in range(20):
        deep = deep / "d"
    deep.mkdir(parents=True)
    ward.refuses_dir(tool, "malformed", r"nested deeper than")


def test_an_oversized_source_file_is_refused_without_reading_it_all(ward: Ward,
                                                                  tool: Path) -> None:
    with open(tool / "src" / "big.h", "wb") as fh:
        fh.truncate(1 << 30)  # sparse: a gigabyte that costs nothing on disk
    ward.refuses_dir(tool, "malformed", r"src/big\.h is larger than")


def test_a_file_name_that_is_not_utf8_is_refused(ward: Ward, tool: Path) -> None:
    os.close(os.open(os.fsencode(tool / "src") + b"/\xff.h", os.O_CREAT | os.O_WRONLY, 0o644))
    ward.refuses_dir(tool, "malformed", r"not valid UTF-8")


def test_the_copy_is_checked_again_and_refuses_a_planted_link(tmp_path: Path) -> None:
    # The build's copy is written with O_EXCL|O_NOFOLLOW: a link planted where a file is
    # about to be written makes the copy fail instead of writing through it.
    into = tmp_path / "copy"
    (into / "src").mkdir(parents=True)
    target = tmp_path / "victim"
    target.write_text("untouched")
    (into / "src" / "main.c").symlink_to(target)
    with pytest.raises(BuildFailed, match="cannot be made safely"):
        write_tree({"src/main.c": b"int main(void) { return 0; }\n"}, into)
    assert target.read_text() == "untouched"
    with pytest.raises(MalformedTool, match="is a symlink"):
        read_tree(into)


def test_a_spec_naming_a_path_as_both_file_and_folder_is_refused(ward: Ward) -> None:
    from .conftest import spec

    files = {"src/x": b"", "src/x/y.h": b""}
    with pytest.raises(MalformedTool, match="both a file and a folder"):
        spec("c", C_MAIN, extra=files)
