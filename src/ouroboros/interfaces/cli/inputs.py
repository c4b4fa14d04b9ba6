"""Reading what a user hands the CLI: files, stdin, JSON, numbers.

Every reader raises a ``UsageError`` (exit 2) naming the input and the fix; none lets a
``FileNotFoundError``, ``IsADirectoryError``, ``UnicodeDecodeError`` or a decoder's
``ValueError`` through. ``harden`` runs over the whole command tree, so every option of
every command (also those added later) refuses NaN, infinities, integers beyond 64 bits
and text that is not UTF-8 before the command body runs.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from typer._click import core as click_core
from typer._click import exceptions as click_exceptions
from typer._coercion import RuntimeParam
from typer._param_types import coerce_cli_choice

from ouroboros.interfaces.json_input import loads_strict
from ouroboros.kernel.errors import NotFound, UsageError

#: Input files larger than this are refused before they are read (a patch value, an
#: envelope, a tests file, a diff: none comes close).
MAX_INPUT_BYTES = 64 << 20
INT64_MAX = 2**63 - 1


def read_bytes(path: Path | str, what: str, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file (or stdin for ``-``), at most ``max_bytes``."""
    if str(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UsageError(f"{what} on stdin is larger than {max_bytes >> 20} MiB")
        return data
    p = Path(path)
    try:
        if not stat.S_ISREG(p.stat().st_mode) and not p.is_dir():
            # A FIFO or device would block or never end: inputs are regular files.
            raise UsageError(f"{what} {p} is not a regular file")
        with p.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(21, "Is a directory")
            if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
                raise UsageError(f"{what} {p} is {info.st_size >> 20} MiB; the limit is "
                                 f"{max_bytes >> 20} MiB")
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} {p} does not exist", "check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {p} is a directory, not a file", "give a file") from None
    except PermissionError:
        raise UsageError(f"{what} {p} is not readable (permission denied)") from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {p}: {e.strerror or type(e).__name__}") from None
    if len(data) > max_bytes:
        raise UsageError(f"{what} {p} is larger than {max_bytes >> 20} MiB")
    return data


def read_text(path: Path | str, what: str, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """UTF-8 text of a file (or stdin for ``-``); invalid UTF-8 is a usage error."""
    data = read_bytes(path, what, max_bytes=max_bytes)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path} is not UTF-8 text (bad byte at offset {e.start})",
                         "save it as UTF-8") from None


def read_json(path: Path | str, what: str) -> Any:
    """One strict JSON document from a file (see ``json_input.loads_strict``)."""
    return loads_strict(read_bytes(path, what), f"{what} {path}")


def parse_json_option(text: str, option: str) -> Any:
    """A strict JSON document given inline, e.g. ``--input '{"a": 1}'``."""
    return loads_strict(text, option)


def require_dir(path: Path, what: str) -> Path:
    """An existing directory (not a file, not missing)."""
    if not path.exists():
        raise NotFound(f"{what} {path} does not exist", "check the path")
    if not path.is_dir():
        raise UsageError(f"{what} {path} is not a directory")
    return path


def writable_parent(path: Path, what: str) -> Path:
    """A path whose directory exists, so writing it fails only for reasons of its own."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as e:
        raise UsageError(f"cannot write {what} {path}: {e.strerror}") from None
    if info is not None and stat.S_ISLNK(info.st_mode) and not path.exists():
        raise UsageError(f"{what} {path} is a broken or looping symbolic link")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory", "give a file name")
    if path.exists() and not path.is_file():
        raise UsageError(f"{what} {path} is not a regular file")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: no directory {path.parent}")
    return path


# -- every parameter of every command ------------------------------------------------


def _refusal(value: Any) -> str | None:
    """Why a converted parameter value is refused, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return "the value does not fit in 64 bits (±9223372036854775807)"
    if isinstance(value, str) and not value.isascii() and any(
            "\ud800" <= ch <= "\udfff" for ch in value):
        # Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape) and
        # would fail much later, when printed, hashed or stored.
        return "the value is not valid UTF-8 text"
    if isinstance(value, Path):
        return _path_refusal(value)
    if isinstance(value, list | tuple):
        for item in value:
            reason = _refusal(item)
            if reason:
                return reason
    return None


def _path_refusal(path: Path) -> str | None:
    """Why no command could use ``path``: a symbolic link loop (anywhere along it) or a
    name the file system refuses. Checked once here, so no command meets the
    ``RuntimeError`` that ``Path.resolve`` raises for a loop, nor an ``OSError`` from an
    ``exists()`` probe. A path that does not exist yet is fine: outputs are created."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{path} is a symbolic link loop"
        if e.errno == errno.ENAMETOOLONG:
            return "the path name is too long for the file system"
    except ValueError:  # an embedded NUL: argv cannot carry one, the API could
        return "the path contains a NUL character"
    return None


@dataclass(frozen=True)
class _PlainParam(RuntimeParam):
    """Typer converts every value through a pydantic ``TypeAdapter``; importing pydantic
    and building the adapters costs more than the rest of a command's start-up. The plain
    types the CLI uses (text, numbers with bounds, paths, choices, lists of them) are
    converted here instead, with click's messages; anything else stays with typer."""

    leaf: Callable[[Any, Any, Any], Any] = lambda value, param, ctx: value
    is_list: bool = False

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.is_list:
            return [self.leaf(v, param, ctx) for v in value]
        return self.leaf(value, param, ctx)


def _fail(message: str, param: Any, ctx: Any) -> NoReturn:
    raise click_exceptions.BadParameter(message, ctx=ctx, param=param)


def _number(kind: type, low: float | None, high: float | None) -> Callable[[Any, Any, Any], Any]:
    name = "integer" if kind is int else "number"

    def convert(value: Any, param: Any, ctx: Any) -> Any:
        number: Any
        if isinstance(value, kind) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            try:
                number = kind(text)
            except (ValueError, OverflowError):
                _fail(f"{text[:40]!r} is not a valid {name}.", param, ctx)
        if low is not None and number < low:
            _fail(f"{number} is below the minimum {low}.", param, ctx)
        if high is not None and number > high:
            _fail(f"{number} is above the maximum {high}.", param, ctx)
        return number

    return convert


def _plain_param(descriptor: Any) -> RuntimeParam | None:
    """The fast converter for a parameter, or None to leave it to typer."""
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    is_list = descriptor.is_list
    if is_list:
        annotation = annotation.__args__[0]
    if descriptor.is_tuple or descriptor.is_file or descriptor.is_datetime or info.parser \
            is not None or info.clamp:
        return None
    leaf: Callable[[Any, Any, Any], Any]
    if descriptor.is_choice:
        choices = tuple(descriptor.choices or ())

        def leaf(value: Any, param: Any, ctx: Any) -> Any:
            try:
                return coerce_cli_choice(value, choices=choices,
                                         case_sensitive=info.case_sensitive, ctx=ctx)
            except ValueError as e:
                _fail(str(e), param, ctx)
    elif annotation is str:
        def leaf(value: Any, param: Any, ctx: Any) -> Any:
            return value if isinstance(value, str) else str(value)
    elif annotation is bool:
        def leaf(value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "t", "yes", "y", "on"):
                return True
            if text in ("", "0", "false", "f", "no", "n", "off"):
                return False
            _fail(f"{text[:40]!r} is not a valid boolean.", param, ctx)
    elif annotation in (int, float):
        leaf = _number(annotation, info.min, info.max)
    elif annotation is Path and not any(
            (info.exists, info.resolve_path, info.path_type, not info.file_okay,
             not info.dir_okay, info.writable, info.readable is False)):
        def leaf(value: Any, param: Any, ctx: Any) -> Any:
            return value if isinstance(value, Path) else Path(value)
    else:
        return None
    return _PlainParam(parameter_info=info, annotation=descriptor.annotation, leaf=leaf,
                       is_list=is_list)


def harden(command: click_core.Command) -> None:
    """Make every parameter of ``command`` (and, for a group, of the commands it holds)
    refuse NaN, infinities, integers beyond 64 bits and text that is not UTF-8, after
    its own conversion and before the command body runs. Idempotent."""
    for param in command.params:
        if getattr(param, "_ouro_hardened", False):
            continue
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", "absent") is None:
            param._runtime_param = _plain_param(descriptor)  # type: ignore[attr-defined]
        convert = param.process_value

        def process_value(ctx: click_core.Context, value: Any,
                          _convert: Any = convert, _param: click_core.Parameter = param) -> Any:
            result = _convert(ctx, value)
            reason = _refusal(result)
            if reason is not None:
                raise click_exceptions.BadParameter(reason, ctx=ctx, param=_param)  # type: ignore[arg-type]
            return result

        param.process_value = process_value  # type: ignore[method-assign]
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # a flag takes no value: show no "<bool>"
        param._ouro_hardened = True  # type: ignore[attr-defined]
    if getattr(command, "_help_option", "absent") is None:
        help_option = command.get_help_option(click_core.Context(command))
        if help_option is not None:
            help_option.metavar = ""
            descriptor = getattr(help_option, "type_descriptor", None)
            if descriptor is not None:
                help_option._runtime_param = _plain_param(descriptor)
    for sub in getattr(command, "commands", {}).values():
        harden(sub)
