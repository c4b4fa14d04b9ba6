"""``once``: a per-instance cached property without a lock.

``functools.cached_property`` takes a lock on first access in Python 3.11 (removed in
3.12), about a microsecond per object; the submit path makes several objects per submit
whose properties are read by one thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class once(Generic[T]):
    """Compute on first access, then store in the instance's ``__dict__`` (which the
    attribute lookup finds first from then on). Works on frozen dataclasses too."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> once[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | once[T]:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value
