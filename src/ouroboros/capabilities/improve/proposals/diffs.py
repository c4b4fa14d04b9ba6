"""Unified diffs: making them from two texts and reading what they change.

Paths are read as git reads them: a name git had to quote (non-ASCII bytes, tabs,
quotes, backslashes) is C-quoted in the headers — ``"b/policy/\\303\\244llow.rego"`` —
and :func:`unquote_git_path` turns it back into the real path. :func:`declared_paths`
lists every path a diff's headers name (``diff --git``, ``---``/``+++``, ``rename`` and
``copy`` from/to, ``Binary files … differ``), skipping hunk bodies, so a rename, copy,
mode change, binary patch or deletion names its paths too.
"""

from __future__ import annotations

import difflib
import re
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


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = re.compile(r"[0-7]{3}")


def unquote_git_path(name: str) -> str:
    """A path as git wrote it in a header, unquoted (C-style escapes, octal UTF-8 bytes).

    Unquoted names come back as they are; bytes that are not UTF-8 are kept as
    surrogate escapes (so git, given the name back, finds the same file).
    """
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if _OCTAL.fullmatch(body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _strip(path: str | None) -> str | None:
    if path is None:
        return None
    path = unquote_git_path(path)
    if path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def _header_names(rest: str) -> list[str]:
    """Names on a header line: one quoted name, or everything up to a tab."""
    rest = rest.rstrip("\n")
    if rest.startswith('"'):
        m = re.match(r'"(?:[^"\\]|\\.)*"', rest)
        if m:
            return [unquote_git_path(m.group(0))]
    return [rest.split("\t", 1)[0]]


def _git_line_names(rest: str) -> list[str]:
    """The two names of ``diff --git A B``; unquoted names with spaces are ambiguous,
    so every split at `` b/`` (and the equal-halves split git itself tries) is kept."""
    rest = rest.rstrip("\n")
    quoted = re.findall(r'"(?:[^"\\]|\\.)*"', rest)
    names = [unquote_git_path(q) for q in quoted]
    plain = re.sub(r'"(?:[^"\\]|\\.)*"', "\x00", rest)
    for part in plain.split("\x00"):
        part = part.strip()
        if not part:
            continue
        names.append(part)
        names += [part[:i] for i in range(len(part)) if part.startswith(" b/", i)]
        names += [part[i + 1:] for i in range(len(part)) if part.startswith(" b/", i)]
        half = (len(part) - 1) // 2
        if len(part) % 2 == 1 and part[half] == " ":
            names += [part[:half], part[half + 1:]]
    return names


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_BINARY = re.compile(r"^Binary files (.+) and (.+) differ$")
_PREFIXED = ("--- ", "+++ ")
_FULL = ("rename from ", "rename to ", "copy from ", "copy to ")


def declared_paths(text: str) -> set[str]:
    """Every path a diff's headers name, as git apply could read it.

    Each name is returned as written and with its first component removed (git apply's
    ``-p1``), so a reader that matches either sees the path git wrote to.
    """
    names: set[str] = set()
    prefixed: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        hunk = _HUNK.match(line)
        if hunk:  # skip the body: its lines are content, not headers
            old = int(hunk.group(1) or 1)
            new = int(hunk.group(2) or 1)
            i += 1
            while i < len(lines) and (old > 0 or new > 0):
                body = lines[i]
                if body.startswith("-"):
                    old -= 1
                elif body.startswith("+"):
                    new -= 1
                elif body == "" or body.startswith(" "):
                    old -= 1
                    new -= 1
                elif not body.startswith("\\"):
                    break  # git ends the hunk here too: the line is read as a header
                i += 1
            continue
        if line.startswith("diff --git "):
            prefixed += _git_line_names(line[len("diff --git "):])
        elif line.startswith(_PREFIXED):
            prefixed += _header_names(line[4:])
        elif line.startswith(_FULL):
            names.update(_header_names(line.split(" ", 2)[2]))
        else:
            binary = _BINARY.match(line)
            if binary:
                prefixed += [unquote_git_path(binary.group(1)), unquote_git_path(binary.group(2))]
        i += 1
    for name in prefixed:
        names.add(name)
        if "/" in name:
            names.add(name.split("/", 1)[1])
    names.discard("/dev/null")
    names.discard("dev/null")
    return {n for n in names if n}


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
