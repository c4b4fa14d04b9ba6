"""Minimal, comment-preserving edits to YAML text, so proposal diffs stay one-line small.

A round trip through a YAML library would reformat the file and bury the change in
noise; these edits touch only the lines they mean to, and every edit is checked by
re-parsing the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's C loader when present (10x faster).

    Raises:
        yaml.YAMLError: the text does not parse, or its aliases expand it far beyond its
            own size (a "billion laughs": every reader that walks the document, the grant
            check, the schema check, would visit each expanded node) or into a cycle.
    """
    try:
        doc = yaml.load(text, Loader=_LOADER)
        expanded, unique = _expansion(doc)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None
    if expanded > _MAX_FANOUT * unique + _SLACK:
        raise yaml.YAMLError(f"aliases expand {unique} collections into {expanded}+; "
                             "write the values out")
    return doc


_MAX_FANOUT = 10  # expanded collections per distinct collection
_SLACK = 10_000


def _expansion(doc: Any) -> tuple[int, int]:
    """(collections counted through every alias, distinct collections); stops counting
    past the limit, raises on a cycle (an alias inside its own anchor)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 0
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise yaml.YAMLError("an alias refers to its own anchor (a cycle)")
        open_.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total = min(total + size(child), _CAP)
        open_.discard(key)
        sizes[key] = total
        return total

    return size(doc), max(len(sizes), 1)


_CAP = 1 << 40


@lru_cache(maxsize=64)
def _parsed(text: str) -> Any:
    return load_yaml(text)


class EditError(ValueError):
    """The YAML does not have the shape the edit needs."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _locate(lines: list[str], path: Sequence[str]) -> tuple[int, int, int]:
    """(line index, block end, indent) of the mapping key at ``path``."""
    start, end, parent = 0, len(lines), -1
    found = -1
    for key in path:
        found, child = -1, None
        for i in range(start, end):
            line = lines[i]
            if _blank(line):
                continue
            ind = _indent(line)
            if ind <= parent:
                end = i
                break
            child = ind if child is None else child
            if ind == child and re.match(rf"{re.escape(key)}\s*:(\s|$)", line.lstrip(" ")):
                found = i
        if found < 0:
            raise EditError(f"key {'.'.join(path)} not found")
        parent = _indent(lines[found])
        start = found + 1
        block_end = end
        for i in range(start, end):
            if not _blank(lines[i]) and _indent(lines[i]) <= parent:
                block_end = i
                break
        end = block_end
    return found, end, parent


def get(text: str, path: Sequence[str]) -> Any:
    doc: Any = _parsed(text)  # shared: callers only read what get() returns
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def set_scalar(text: str, path: Sequence[str], value: int | float | str) -> str:
    """Set ``path`` to a scalar, inserting the key at the end of its parent block if absent."""
    lines = text.splitlines(keepends=True)
    rendered = json.dumps(value) if isinstance(value, str) else str(value)
    try:
        at, _, ind = _locate(lines, path)
        line = lines[at]
        m = re.match(r"^(\s*[^:#]+:)\s*([^#\n]*?)(\s+#.*)?(\n?)$", line)
        if not m:
            raise EditError(f"cannot edit line {at + 1}: {line.strip()}")
        lines[at] = f"{m.group(1)} {rendered}{m.group(3) or ''}{m.group(4)}"
    except EditError:
        if len(path) < 2:
            raise
        parent_at, end, parent_ind = _locate(lines, path[:-1])
        children = [i for i in range(parent_at + 1, end) if not _blank(lines[i])]
        ind = _indent(lines[children[0]]) if children else parent_ind + 2
        last = children[-1] if children else parent_at
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, f"{' ' * ind}{path[-1]}: {rendered}\n")
    result = "".join(lines)
    if get(result, path) != value:
        raise EditError(f"edit of {'.'.join(path)} did not take effect")
    return result


def append_to_block(text: str, path: Sequence[str], new_line: str) -> str:
    """Append a line to the literal block scalar (``key: |``) at ``path``."""
    lines = text.splitlines(keepends=True)
    at, end, ind = _locate(lines, path)
    if not re.search(r":\s*\|[-+]?\s*$", lines[at]):
        raise EditError(f"{'.'.join(path)} is not a literal block (key: |)")
    body = [i for i in range(at + 1, end) if lines[i].strip()]
    content_ind = _indent(lines[body[0]]) if body else ind + 2
    last = body[-1] if body else at
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"{' ' * content_ind}{new_line}\n")
    result = "".join(lines)
    current = get(result, path)
    if not isinstance(current, str) or new_line not in current:
        raise EditError(f"append to {'.'.join(path)} did not take effect")
    return result
