"""Typer's help renderer without the parts ``ouro`` never uses.

``typer.rich_utils`` imports ``rich.markdown`` (markdown-it, pygments) and
``rich.traceback`` (attrs, ``rich.pretty``) at module level: about 40 ms of every
``ouro --help``. It needs them only for ``rich_markup_mode="markdown"`` and for pretty
exceptions, and ``ouro`` uses neither. ``install()`` puts a finder in front of the import
system that, while ``typer.rich_utils`` itself executes, offers stand-ins for those two
modules; a stand-in imports the real class the moment it is used, so behaviour is
unchanged, only deferred. The stand-ins are never left in ``sys.modules``.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

TARGET = "typer.rich_utils"


class _Markdown:
    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.markdown import Markdown

        return Markdown(*args, **kwargs)


class _Traceback:
    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.traceback import Traceback

        return Traceback(*args, **kwargs)

    @classmethod
    def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.traceback import Traceback

        return Traceback.from_exception(*args, **kwargs)


_STANDINS = {"rich.markdown": ("Markdown", _Markdown), "rich.traceback": ("Traceback", _Traceback)}


class _Loader:
    """Wraps the real loader (duck-typed: ``importlib.abc`` alone costs ~5 ms to import)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self.real.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        placed = []
        for name, (attr, standin) in _STANDINS.items():
            if name not in sys.modules:
                stub = types.ModuleType(name)
                setattr(stub, attr, standin)
                sys.modules[name] = stub
                placed.append(name)
        try:
            self.real.exec_module(module)
        finally:
            for name in placed:  # a later `import rich.markdown` gets the real module
                sys.modules.pop(name, None)


class _Finder:
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)  # once: find the real module, then step aside
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)  # type: ignore[assignment]
        return spec


def install() -> None:
    """Defer rich.markdown and rich.traceback past the import of typer's help renderer."""
    if TARGET in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
