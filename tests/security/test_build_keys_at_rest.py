"""Private keys at rest: 0600 files in a 0700 folder, encrypted under OURO_KEY_PASSPHRASE,
refused when loose or linked, and a wrong or missing passphrase is a one-line error (exit 2),
never a traceback. (That no build or tool can reach them: test_build_jail.py,
test_build_c.py, test_build_zig.py and test_tool_runtime.py.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.errors import KeyError_
from ouroboros.kernel.keys import Keyring, keyring_roots


def ouro(*args: str, home: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "OURO_KEY_PASSPHRASE"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=120, env=full)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_workspace_keeps_private_keys_owner_only(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    rt.close()
    keys = tmp_path / "ws" / "keys"
    assert mode(keys) == 0o700
    assert mode(keys / "root.key") == 0o600 and mode(keys / "runtime.key") == 0o600
    assert Path(os.path.abspath(keys)) in keyring_roots()


def test_a_loose_keys_folder_is_tightened_when_a_key_is_made(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    Keyring(keys).new("alice")
    assert mode(keys) == 0o700


def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    ring.new("alice")
    (tmp_path / "keys" / "alice.key").chmod(0o644)
    with pytest.raises(KeyError_, match=r"open to others \(mode 0644\)") as err:
        Keyring(tmp_path / "keys").load("alice")
    assert "chmod 600" in err.value.hint


def test_a_key_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    ring.new("alice")
    real = tmp_path / "keys" / "alice.key"
    moved = tmp_path / "elsewhere.key"
    real.rename(moved)
    real.symlink_to(moved)
    with pytest.raises(KeyError_, match="cannot be opened safely"):
        Keyring(tmp_path / "keys").load("alice")


def test_with_a_passphrase_keys_are_encrypted_and_still_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OURO_KEY_PASSPHRASE", "correct horse battery staple")
    ring = Keyring(tmp_path / "keys")
    made = ring.new("alice")
    pem = (tmp_path / "keys" / "alice.key").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = Keyring(tmp_path / "keys").load("alice")
    assert loaded.key_id == made.key_id and loaded.sign(b"x") == made.sign(b"x")


@pytest.fixture(scope="module")
def encrypted_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("encrypted") / "ws"
    r = ouro("init", home=home, env={"OURO_KEY_PASSPHRASE": "s3cret"})
    assert r.returncode == 0, r.stderr
    assert (home / "keys" / "runtime.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    return home


def _record_prompt(home: Path, tmp_path: Path, env: dict[str, str]
                   ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "p.txt").write_text("You are terse.")
    out = tmp_path / "p.json"
    r = ouro("patch", "new", "--type", "prompt", "--target", "agents/a/prompt", "--text",
             str(tmp_path / "p.txt"), "--reason", "terse", "-o", str(out), home=home, env=env)
    assert r.returncode == 0, r.stderr
    return ouro("patch", "sign", str(out), "--key", "root", home=home, env=env)


def test_the_right_passphrase_signs(encrypted_home: Path, tmp_path: Path) -> None:
    r = _record_prompt(encrypted_home, tmp_path, {"OURO_KEY_PASSPHRASE": "s3cret"})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [({"OURO_KEY_PASSPHRASE": "wrong"}, "wrong passphrase"),
     ({}, "encrypted and no passphrase was given")],
    ids=["wrong", "missing"],
)
def test_a_wrong_or_missing_passphrase_is_a_usage_error_without_traceback(
    encrypted_home: Path, tmp_path: Path, env: dict[str, str], message: str,
) -> None:
    r = _record_prompt(encrypted_home, tmp_path, env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    said = " ".join((r.stdout + r.stderr).split())
    assert "Traceback" not in said and message in said and "OURO_KEY_PASSPHRASE" in said
