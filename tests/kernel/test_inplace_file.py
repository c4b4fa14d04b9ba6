"""The ledger's checkpoint file is rewritten through a descriptor kept open (issue 17):
the note must still land in the file readers find by name, whatever happened to it."""

from __future__ import annotations

import os
from pathlib import Path

from ouroboros.storage.files import InPlaceFile


def test_rewrites_in_place_and_cuts_a_longer_tail(tmp_path: Path) -> None:
    path = tmp_path / "ledger.checkpoint"
    f = InPlaceFile(str(path))
    f.rewrite(b"a" * 100, durable=False)
    ino = path.stat().st_ino
    f.rewrite(b"b" * 10, durable=True)
    assert path.read_bytes() == b"b" * 10 and path.stat().st_ino == ino
    f.close()
    f.close()  # twice is harmless


def test_a_removed_file_is_written_again_by_name(tmp_path: Path) -> None:
    path = tmp_path / "ledger.checkpoint"
    f = InPlaceFile(str(path))
    f.rewrite(b"first", durable=False)
    path.unlink()
    f.rewrite(b"second", durable=False)
    assert path.read_bytes() == b"second"
    f.close()


def test_a_file_renamed_over_it_gets_the_note(tmp_path: Path) -> None:
    """An attacker (or a restore) renames another file over the checkpoint: the next
    note goes to the file at that name, and the forged content is overwritten."""
    path = tmp_path / "ledger.checkpoint"
    f = InPlaceFile(str(path))
    f.rewrite(b"note 1", durable=False)
    forged = tmp_path / "forged"
    forged.write_bytes(b"forged checkpoint that is much longer than the note")
    os.replace(forged, path)
    f.rewrite(b"note 2", durable=False)
    assert path.read_bytes() == b"note 2"
    f.close()


def test_a_runtime_keeps_its_checkpoint_current_after_tampering(tmp_path: Path) -> None:
    from ouroboros.kernel import Runtime

    rt = Runtime.init(tmp_path / "ws")
    rt.record("BenchEvent", {"i": 0})
    cp = Path(rt.backend.checkpoint_path)  # type: ignore[attr-defined]
    cp.unlink()
    rt.record("BenchEvent", {"i": 1})
    assert cp.exists() and rt.backend.get_checkpoint() == cp.read_bytes()
    report = rt.verify()  # raises IntegrityError on any mismatch
    assert report.events == rt.backend.count() and report.anchors
    rt.close()
