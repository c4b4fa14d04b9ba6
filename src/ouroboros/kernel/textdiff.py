"""Unified diffs for text targets: made with difflib, applied strictly.

Applying never fuzzes: every context and removed line must match at the stated position.
The patch's ``base`` hash already pins the exact text, so any mismatch means the diff was
made against something else and must be rejected, not merged.
"""

from __future__ import annotations

import difflib
import re

from ouroboros.kernel.errors import InvalidPatch

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_EOL = "\\ No newline at end of file\n"


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only, each keeping its newline (the last may lack one)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def make_diff(old: str, new: str, name: str = "target") -> str:
    """A unified diff turning ``old`` into ``new`` exactly (including a missing final newline)."""
    out: list[str] = []
    for line in difflib.unified_diff(split_lines(old), split_lines(new),
                                     f"a/{name}", f"b/{name}", n=3, lineterm="\n"):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n" + _NO_EOL)
    return "".join(out)


def apply_diff(old: str, diff: str) -> str:
    """Apply a unified diff to ``old``; raise ``InvalidPatch`` naming the first mismatch."""
    src = split_lines(old)
    lines = split_lines(diff)
    out: list[str] = []
    pos = 0
    i = 0
    saw_hunk = False
    while i < len(lines):
        line = lines[i]
        m = _HUNK.match(line)
        if m is None:
            if not saw_hunk and line.startswith(("--- ", "+++ ", "diff ", "index ")):
                i += 1
                continue
            raise InvalidPatch(f"diff line {i + 1} is not a hunk header: {line.rstrip()!r}")
        saw_hunk = True
        old_start, new_len_s = int(m[1]), m[4]
        old_len = int(m[2]) if m[2] is not None else 1
        new_len = int(new_len_s) if new_len_s is not None else 1
        start = old_start - 1 if old_len > 0 else old_start
        if start < pos or start > len(src):
            raise InvalidPatch(f"diff hunk at line {i + 1} starts at {old_start}, "
                               f"outside the target ({len(src)} lines)")
        out.extend(src[pos:start])
        pos = start
        i += 1
        seen_old = seen_new = 0
        while i < len(lines) and (seen_old < old_len or seen_new < new_len):
            raw = lines[i]
            tag, body = raw[:1], raw[1:]
            if raw == "\n":  # some tools drop the space of an empty context line
                tag, body = " ", "\n"
            if i + 1 < len(lines) and lines[i + 1] == _NO_EOL:
                body = body[:-1] if body.endswith("\n") else body
                i += 1
            if tag in (" ", "-"):
                if pos >= len(src) or src[pos] != body:
                    found = src[pos].rstrip("\n") if pos < len(src) else "end of text"
                    raise InvalidPatch(f"diff does not apply at target line {pos + 1}: "
                                       f"expected {body.rstrip(chr(10))!r}, found {found!r}")
                pos += 1
                seen_old += 1
                if tag == " ":
                    out.append(body)
                    seen_new += 1
            elif tag == "+":
                out.append(body)
                seen_new += 1
            else:
                raise InvalidPatch(f"diff line {i + 1} has an unknown prefix {tag!r}")
            i += 1
        if seen_old != old_len or seen_new != new_len:
            raise InvalidPatch(f"diff hunk {m[0]!r} is truncated")
    if not saw_hunk and diff.strip():
        raise InvalidPatch("diff has no hunks")
    out.extend(src[pos:])
    return "".join(out)
