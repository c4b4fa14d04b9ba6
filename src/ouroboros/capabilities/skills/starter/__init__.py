"""Starter tools shipped with Ouroboros, one hand-written tool directory each."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def starter_dirs() -> list[Path]:
    """Every starter tool directory (those with a meta.json), by name."""
    return sorted(p for p in HERE.iterdir() if (p / "meta.json").is_file())
