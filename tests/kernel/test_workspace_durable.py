"""workspace.json pins the ledger's genesis and names its ledger: a power loss right after
`init` or `migrate` must leave the old file or the new one, never an empty one or a rename
that never reached the disk (an empty pin is an unopenable workspace)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.workspace import CONFIG_NAME, Workspace


def test_workspace_json_is_fsynced_then_renamed_then_its_folder_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(f"replace {os.fspath(dst)}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ws = Workspace.load(home)
    ws.save()
    path = str((home / CONFIG_NAME).resolve())
    mine = [c for c in calls if c.endswith((path, path + ".tmp", str(home.resolve())))]
    assert mine == [f"fsync {path}.tmp", f"replace {path}", f"fsync {home.resolve()}"], calls
    assert Workspace.load(home).config == ws.config
