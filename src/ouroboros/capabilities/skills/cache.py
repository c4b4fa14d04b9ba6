"""Where slow, reproducible work is kept between runs (compiled modules, the Zig cache).

`$OURO_CACHE` overrides the default `~/.cache/ouroboros`; CI keeps that folder between runs,
so a fresh clone compiles each module once.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    given = os.environ.get("OURO_CACHE")
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "ouroboros"
