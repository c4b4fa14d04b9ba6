"""Unified diffs: making them from two texts and reading what they change."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet


class DiffError(ValueError):
    """The text is not a unified diff we can read."""


@dataclass(frozen=True)
class FileChange:
    """One file touched by a diff, with the lines it adds and removes."""

    source: str | None  # path before (None: new file)
    target: str | None  # path after (None: deleted file)
    added: tuple[str, ...]
    removed: tuple[str, ...]
    new_mode: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.source, self.target) if p))

    @property
    def path(self) -> str:
        return self.target or self.source or ""


def make_diff(path: str, old: str, new: str) -> str:
    """A git-style unified diff turning ``old`` into ``new`` for ``path``."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    out = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                  for line in lines)
    return f"diff --git a/{path} b/{path}\n{out}" if out else ""


def _strip(path: str | None) -> str | None:
    if path is None or path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def parse_diff(text: str) -> list[FileChange]:
    """Files and lines a unified diff touches.

    Raises:
        DiffError: the text is empty or not a unified diff.
    """
    try:
        patch = PatchSet(text)
    except UnidiffParseError as e:
        raise DiffError(f"not a unified diff: {e}") from e
    if not len(patch):
        raise DiffError("not a unified diff: no file headers (--- a/… +++ b/…)")
    changes = []
    for pf in patch:
        source = None if pf.is_added_file else _strip(pf.source_file)
        target = None if pf.is_removed_file else _strip(pf.target_file)
        added = tuple(str(line.value).rstrip("\n") for h in pf for line in h if line.is_added)
        removed = tuple(str(line.value).rstrip("\n") for h in pf for line in h if line.is_removed)
        mode = None
        for header in (pf.patch_info or []):
            header = str(header)
            if header.startswith(("new file mode ", "new mode ")):
                mode = header.split()[-1]
        changes.append(FileChange(source, target, added, removed, mode))
    return changes
