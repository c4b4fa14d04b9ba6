"""Run ``ouro`` in this process, discover its commands, and make hostile inputs.

In-process runs go through ``main.run`` — the same entry point and error path as the
installed ``ouro`` — with stdin, stdout and stderr captured, so hundreds of invocations
take seconds instead of a Python start-up each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer._click import core as click_core

from ouroboros.interfaces.cli import main

#: Exit codes DESIGN.md documents.
DOCUMENTED = {0, 1, 2, 3, 4}


class Hung(BaseException):
    """Raised by the alarm when one invocation runs longer than the walker allows."""


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (f"ouro {' '.join(a[:60] for a in self.args)} → exit {self.code}\n"
                f"stdout: {self.stdout[:600]}\nstderr: {self.stderr[:600]}")


def run(*args: str, stdin: bytes = b"", timeout: float = 60.0) -> Result:
    """``ouro ARGS`` in-process; a run longer than ``timeout`` raises ``Hung``."""
    out, err = io.StringIO(), io.StringIO()
    fake_in = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")

    def alarm(signum: int, frame: Any) -> None:
        raise Hung(f"ouro {' '.join(args)[:200]} ran longer than {timeout} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    old_in = sys.stdin
    try:
        sys.stdin = fake_in
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main.run(list(args))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.stdin = old_in
    return Result(tuple(args), code, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class Leaf:
    """A runnable command: its path under ``ouro`` and its click object."""

    path: tuple[str, ...]
    command: click_core.Command

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def params(self) -> list[click_core.Parameter]:
        return [p for p in self.command.params if p.name not in ("help",)]

    def has_option(self, flag: str) -> bool:
        return any(flag in getattr(p, "opts", ()) for p in self.command.params)


def leaves() -> list[Leaf]:
    """Every runnable ``ouro`` command, lazy groups loaded: discovered, never listed."""
    root = typer.main.get_command(main.app)
    ctx = click_core.Context(root, info_name="ouro")
    found: list[Leaf] = []

    def walk(group: Any, path: tuple[str, ...], ctx: click_core.Context) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            if hasattr(command, "list_commands"):
                walk(command, (*path, name), click_core.Context(command, parent=ctx,
                                                                 info_name=name))
            else:
                found.append(Leaf((*path, name), command))

    walk(root, (), ctx)
    return found


def kind_of(param: click_core.Parameter) -> str:
    """path, int, float, choice, flag, text — from the typer parameter's annotation."""
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return "text"
    if descriptor.is_choice:
        return "choice"
    if descriptor.is_path:
        return "path"
    annotation = descriptor.annotation
    if descriptor.is_list:
        annotation = annotation.__args__[0]
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return "text"


def choices_of(param: click_core.Parameter) -> tuple[Any, ...]:
    descriptor = getattr(param, "type_descriptor", None)
    return tuple(descriptor.choices or ()) if descriptor is not None else ()


class Files:
    """Hostile files, made once per session in ``root``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.placeholder = self._write("placeholder.json", b"{}")
        self.made = {
            "missing": root / "does-not-exist.json",
            "directory": root,
            "empty": self._write("empty.json", b""),
            "invalid-utf8": self._write("invalid.json", b'{"a": "\xff\xfe\xc3("}'),
            "deep-json": self._write("deep.json", b"[" * 100_000 + b"]" * 100_000),
            "5000-digits": self._write("bigint.json", b'{"a": ' + b"9" * 5000 + b"}"),
            "nan": self._write("nan.json", b'{"a": NaN, "b": Infinity}'),
            "duplicate-keys": self._write("dup.json", b'{"a": 1, "a": 2}'),
            "truncated": self._write("truncated.json", b'{"payload": "eyJh'),
            "garbage": self._write("garbage.bin", bytes(range(256)) * 8),
            "flux-magic-garbage": self._write("magic.bin", b"FLUX" + bytes(range(200))),
            "lone-surrogate": self._write("surrogate.json", b'{"a": "\\ud800"}'),
            "symlink-loop": self._loop(),
            "fifo": self._fifo(),
        }

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def _loop(self) -> Path:
        link = self.root / "loop"
        if not link.is_symlink():
            os.symlink(link, link)
        return link

    def _fifo(self) -> Path:
        fifo = self.root / "fifo"
        if not fifo.exists():
            os.mkfifo(fifo)
        return fifo


HOSTILE_INT = ["9" * 5000, "99999999999999999999999", "-1", "1e308", "nan", "0x10", "", "١٢"]
HOSTILE_FLOAT = ["nan", "inf", "-inf", "1e308", "-1e308", "9" * 5000, "x", "1e-320"]
HOSTILE_TEXT = ["", "\udcff\udcfe", "[" * 5000, '{"a": NaN}', "a" * 20000, "../../etc/passwd",
                "kernel/trust", "-", "*", "$(touch pwned)", "\u202egnp.exe", "ID"]


def hostile_values(kind: str, files: Files, param: click_core.Parameter) -> list[str]:
    if kind == "int":
        return HOSTILE_INT
    if kind == "float":
        return HOSTILE_FLOAT
    if kind == "path":
        return [str(p) for p in files.made.values()]
    if kind == "choice":
        return ["no-such-choice", "", "\udcff"]
    return HOSTILE_TEXT


def placeholder(param: click_core.Parameter, files: Files) -> str:
    kind = kind_of(param)
    if kind == "path":
        return str(files.placeholder)
    if kind == "int":
        return "1"
    if kind == "float":
        return "1.0"
    if kind == "choice":
        return str(choices_of(param)[0])
    return "x"


def argv_for(leaf: Leaf, files: Files, override: dict[str, str] | None = None,
             base: list[str] | None = None) -> list[str]:
    """Command path + required parameters (placeholders unless overridden) + ``base``."""
    override = override or {}
    args: list[str] = [*leaf.path]
    for param in leaf.params():
        name = param.name or ""
        given = name in override
        if not (param.required or given):
            continue
        value = override[name] if given else placeholder(param, files)
        if param.param_type_name == "argument":
            args.append(value)
        else:
            args += [param.opts[0], value]  # type: ignore[attr-defined]
    return [*args, *(base or [])]


@contextlib.contextmanager
def env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
