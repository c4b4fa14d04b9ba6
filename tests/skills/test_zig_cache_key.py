"""The jail's pristine Zig cache is keyed by the installation, not only the version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ouroboros.capabilities.skills.building import zig_cache


def _fake_zig(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "libc.c").write_text("int x;\n")
    return root


def test_two_installations_of_one_version_get_two_caches(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _fake_zig(tmp_path / "a"), _fake_zig(tmp_path / "b")
    monkeypatch.setattr(zig_cache, "zig_version", lambda: "0.0.1")
    monkeypatch.setattr(zig_cache, "zig_package", lambda: a)
    first = zig_cache.pristine_dir()
    assert first == zig_cache.pristine_dir()  # stable for one installation
    monkeypatch.setattr(zig_cache, "zig_package", lambda: b)
    assert zig_cache.pristine_dir() != first
    # A reinstall in the same place (new inodes) is another installation too.
    shutil.rmtree(a)
    _fake_zig(a)
    monkeypatch.setattr(zig_cache, "zig_package", lambda: a)
    assert zig_cache.pristine_dir() != first
