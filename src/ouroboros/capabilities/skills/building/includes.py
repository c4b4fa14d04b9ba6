"""What a tool's source may pull in at build time: only its own files, by literal paths.

Compilers read files named in the source: C's ``#include``/``#embed`` (and
``__has_include``, assembler ``.incbin``), Zig's ``@import``/``@embedFile``/``@cInclude``,
Rust's ``include!``/``include_str!``/``include_bytes!`` and ``#[path]``. The jail already
hides everything but the tool's copy and the toolchain; this check refuses, before any
compiler runs and with a message naming the line, every such reference that is not a
literal relative path inside the tool: absolute paths, ``..``, ``~``, backslashes, paths
computed by macros or ``comptime`` code, ``.incbin`` (which no path check can follow) and
Rust's build-time ``env!``/``option_env!``. Comments and string literals are lexed, so a
directive hidden after a fake comment start or a raw string is still seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import BuildFailed


@dataclass(frozen=True)
class Reference:
    """A file the source asks the compiler to read, with where it was asked."""

    path: str | None  # None: the operand is not a literal (a macro, an expression)
    file: str
    line: int
    construct: str


def check_sources(language: str, files: dict[str, bytes]) -> None:
    """Refuse a spec whose source reaches outside the tool at build time.

    Raises:
        BuildFailed: naming the file, line and construct.
    """
    for rel, data in sorted(files.items()):
        if not rel.startswith("src/"):
            continue  # the build sees src/ only
        scanner = _scanner_for(language, rel)
        if scanner is None:
            continue
        text = data.decode("latin-1").removeprefix("\xef\xbb\xbf")  # bytes as the compiler reads them
        for ref in scanner(rel, text):
            problem = path_problem(ref.path)
            if problem:
                raise BuildFailed(
                    f"{ref.file}:{ref.line}: {ref.construct} {problem}",
                    "a tool may pull in only its own files, by literal paths relative to "
                    "its source, without '..' (the build sees nothing else)",
                )


def _scanner_for(language: str, rel: str) -> Callable[[str, str], Iterator[Reference]] | None:
    """Any file a compiler can be told to include is read as that compiler's source, so
    every file under src/ is scanned: Zig files as Zig, the rest of a Zig tool as C (what
    ``@cInclude`` would read them as), every file of a C or Rust tool as C or Rust."""
    if language == "zig":
        return _scan_zig if rel.endswith((".zig", ".zon")) else _scan_c
    return _SCANNERS.get(language)


def path_problem(path: str | None) -> str | None:
    """Why a referenced path is refused, or None when it is a plain relative path."""
    if path is None:
        return "does not name a literal path (computed paths cannot be checked)"
    if not path:
        return "names an empty path"
    if "\0" in path:
        return "names a path with a NUL byte"
    if path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path):
        return f"names an absolute path {path!r}"
    if "\\" in path:
        return f"names a path with a backslash {path!r}"
    if ".." in path.split("/"):
        return f"names a path outside the tool {path!r}"
    return None


# -- C ------------------------------------------------------------------------------------

_C_INCLUDE = re.compile(r"^[ \t\f\v]*(?:#|%:)[ \t\f\v]*(include_next|include|import|embed)\b(.*)$")
_C_PRAGMA = re.compile(r"^[ \t\f\v]*(?:#|%:)[ \t\f\v]*pragma\b(.*)$")
_C_HAS = re.compile(r"\b(__has_include_next|__has_include|__has_embed)\b\s*(\(?)\s*(.*)")
_C_LITERAL = re.compile(r'^\s*(?:"([^"\n]*)"|<([^>\n]*)>)')


def _scan_c(rel: str, text: str) -> Iterator[Reference]:
    if re.search(r"incbin", text, re.IGNORECASE):
        yield Reference(None, rel, _line_of(text, "incbin"), "an assembler .incbin")
    code = _c_code(text)
    for number, line in enumerate(code.split("\n"), start=1):
        m = _C_INCLUDE.match(line)
        if m:
            yield Reference(_c_operand(m.group(2)), rel, number, f"#{m.group(1)}")
        p = _C_PRAGMA.match(line)
        if p and re.search(r"\bdependency\b", p.group(1)):
            yield Reference(None, rel, number, "#pragma dependency")
        for h in _C_HAS.finditer(line):
            operand = _c_operand(h.group(3)) if h.group(2) else None
            yield Reference(operand, rel, number, h.group(1))
        if "_Pragma" in line and re.search(r"dependency", line):
            yield Reference(None, rel, number, "_Pragma dependency")


def _c_operand(rest: str) -> str | None:
    m = _C_LITERAL.match(rest)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def _c_code(text: str) -> str:
    """C source as the preprocessor sees its lines: trigraphs and line splices resolved,
    comments replaced by a space (newlines kept), literals kept (raw strings included)."""
    text = text.replace("\r\n", "\n").replace("??=", "#").replace("??/", "\\")
    text = re.sub(r"\\[ \t]*\n", "", text)
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            end = n if j < 0 else j + 2
            out.append(" " + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"' and _raw_prefix(text, i):
            m = re.match(r'"([^ ()\\\t\v\f\n]{0,16})\(', text[i:])
            if m is None:
                out.append(c)
                i += 1
                continue
            close = ")" + m.group(1) + '"'
            j = text.find(close, i + m.end())
            end = n if j < 0 else j + len(close)
            out.append(text[i:end])
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] not in (c, "\n"):
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _raw_prefix(text: str, i: int) -> bool:
    """Whether the quote at `i` opens a raw string (R", u8R", LR", uR", UR")."""
    m = re.search(r"(?:u8|[uUL])?R$", text[max(0, i - 3) : i])
    if m is None:
        return False
    start = i - len(m.group(0))
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")


# -- Zig ----------------------------------------------------------------------------------

_ZIG_BUILTIN = re.compile(r"@(import|embedFile|cInclude)\s*\(")
_ZIG_MODULES = {"std", "builtin", "root"}


def _scan_zig(rel: str, text: str) -> Iterator[Reference]:
    if re.search(r"incbin", text, re.IGNORECASE):
        yield Reference(None, rel, _line_of(text, "incbin"), "an assembler .incbin")
    code = _zig_code(text)
    for m in _ZIG_BUILTIN.finditer(code):
        name = m.group(1)
        line = code.count("\n", 0, m.start()) + 1
        literal = re.match(r'\s*"((?:[^"\\\n]|\\.)*)"\s*\)', code[m.end():])
        path = _zig_unescape(literal.group(1)) if literal else None
        if name == "import" and path in _ZIG_MODULES:
            continue
        yield Reference(path, rel, line, f"@{name}")


def _zig_code(text: str) -> str:
    """Zig source with comments blanked (strings and multiline ``\\\\`` lines kept)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        i, n, kept = 0, len(line), []
        while i < n:
            c = line[i]
            if line.startswith("\\\\", i):
                kept.append(line[i:])  # a multiline string line runs to the end of the line
                break
            if line.startswith("//", i):
                break
            if c in "\"'":
                j = i + 1
                while j < n and line[j] != c:
                    j += 2 if line[j] == "\\" else 1
                kept.append(line[i : j + 1])
                i = j + 1
                continue
            kept.append(c)
            i += 1
        out.append("".join(kept))
    return "\n".join(out)


def _zig_unescape(raw: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        simple = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "\\'": "'", '\\"': '"'}
        if s in simple:
            return simple[s]
        try:  # a malformed escape (``\\x`` at the end, a code point past U+10FFFF) stays
            # as written: Zig refuses it, and the backslash keeps the path refused here too
            if s.startswith("\\x") and len(s) == 4:
                return chr(int(s[2:], 16))
            if s.startswith("\\u{"):
                return chr(int(s[3:-1], 16))
        except ValueError:
            pass
        return s

    return re.sub(r"\\x[0-9a-fA-F]{2}|\\u\{[0-9a-fA-F]+\}|\\.", one, raw)


# -- Rust ---------------------------------------------------------------------------------

_RUST_INCLUDE = re.compile(r"\b(include_bytes|include_str|include)\s*!\s*[\(\[\{]")
_RUST_ENV = re.compile(r"\b(env|option_env)\s*!\s*[\(\[\{]")
_RUST_PATH = re.compile(r"#\s*!?\s*\[\s*path\s*=")
_RUST_STRING = re.compile(r'\s*(?:r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)")', re.DOTALL)


def _scan_rust(rel: str, text: str) -> Iterator[Reference]:
    if re.search(r"incbin", text, re.IGNORECASE):
        yield Reference(None, rel, _line_of(text, "incbin"), "an assembler .incbin")
    code = _rust_code(text)
    for m in _RUST_ENV.finditer(code):
        yield Reference(None, rel, code.count("\n", 0, m.start()) + 1,
                        f"{m.group(1)}! (the build's environment is not the tool's to read)")
    for pattern, construct in ((_RUST_INCLUDE, None), (_RUST_PATH, "#[path]")):
        for m in pattern.finditer(code):
            literal = _RUST_STRING.match(code, m.end())
            path = None
            if literal:
                path = literal.group(2) if literal.group(2) is not None else literal.group(3)
                after = code[literal.end():].lstrip()
                if construct is None and not after.startswith((")", "]", "}")):
                    path = None  # `include!("a" ...)`: more than one literal token
            yield Reference(path, rel, code.count("\n", 0, m.start()) + 1,
                            construct or f"{m.group(1)}!")


def _rust_code(text: str) -> str:
    """Rust source with comments blanked (nested block comments, raw strings respected)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j
            continue
        raw = re.match(r'b?r(#*)"', text[i:]) if text[i] in "br" and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) else None
        if raw:
            close = '"' + raw.group(1)
            j = text.find(close, i + raw.end())
            end = n if j < 0 else j + len(close)
            out.append(text[i:end])
            i = end
            continue
        if text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _line_of(text: str, needle: str) -> int:
    m = re.search(needle, text, re.IGNORECASE)
    return 1 if m is None else text.count("\n", 0, m.start()) + 1


_SCANNERS: dict[str, Callable[[str, str], Iterator[Reference]]] = {
    "c": _scan_c,
    "zig": _scan_zig,
    "rust": _scan_rust,
}
