"""Every command reads the workspace's `workspace.json` and `ouro.toml`. A workspace
writer (any local process of the user) who puts a FIFO, a link to a device or to another
file, a huge file or bytes that are not what the runtime writes under either name must
get a one-line error naming the file (exit 1 for `workspace.json`, an integrity error;
exit 2 for `ouro.toml`, the user's configuration), never a hang, an unbounded read or a
traceback; and nothing is written through the planted file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime

from .plants import PLANTS, plant, run_capped


def ouro(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A CLI run in a child with a deadline (a FIFO would block it for ever) and an
    address-space cap (/dev/zero would fill its memory)."""
    return run_capped([sys.executable, "-m", "ouroboros", *args, "--json"], cwd=cwd)


def _error(child: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert "Traceback" not in child.stderr, child.stderr[-2000:]
    assert child.stderr == "", child.stderr[-2000:]
    body = json.loads(child.stdout)["error"]
    assert isinstance(body, dict)
    return body


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    return home


@pytest.mark.parametrize("how", PLANTS)
def test_a_planted_workspace_json_is_an_integrity_error_naming_it(
        home: Path, tmp_path: Path, how: str) -> None:
    config = home / "workspace.json"
    victim = tmp_path / "victim.json"
    victim.write_bytes(config.read_bytes())  # a valid copy: reading through would work
    plant(config, how, victim, b'["genesis"]\n')
    planted = os.lstat(config)
    child = ouro("state", "--home", str(home), cwd=tmp_path)
    body = _error(child)
    assert child.returncode == 1, child.stdout
    assert body["code"] == "integrity", body
    assert "workspace.json" in str(body["message"]), body
    child = ouro("init", "--home", str(home), cwd=tmp_path)  # over it: refused, not read
    assert child.returncode == 2 and _error(child)["code"] == "usage", child.stdout
    assert json.loads(victim.read_text())  # the copy read through the link is intact
    after = os.lstat(config)  # left as planted: nothing replaced or written through
    assert (after.st_ino, after.st_size, after.st_mode) == \
        (planted.st_ino, planted.st_size, planted.st_mode)


@pytest.mark.parametrize("how", PLANTS)
def test_a_planted_ouro_toml_is_a_configuration_error_naming_it(
        home: Path, tmp_path: Path, how: str) -> None:
    victim = tmp_path / "victim.toml"
    victim.write_text('[llm]\nmodel = "read-through"\n')
    where = tmp_path / "elsewhere"
    where.mkdir()
    for toml in (home / "ouro.toml", where / "ouro.toml", where / "pyproject.toml"):
        plant(toml, how, victim, b"llm = 3\n" if toml.name == "ouro.toml"
              else b"[tool]\nouroboros = 3\n")
        for args in (("config", "show"), ("config", "check")):
            child = ouro(*args, "--home", str(home), cwd=where)
            if how == "link_to_victim":  # the user's own file behind a link: read through
                assert child.returncode == 0, (toml, args, child.stdout, child.stderr)
                continue
            body = _error(child)
            assert child.returncode == 2 and body["code"] == "usage", (toml, args, child.stdout)
            if how != "wrong_shape":  # a value of the wrong type names its key instead
                assert str(toml) in str(body["message"]), (toml, body)
        assert victim.read_text() == '[llm]\nmodel = "read-through"\n'
        toml.unlink()
    assert ouro("config", "show", "--home", str(home), cwd=where).returncode == 0


@pytest.mark.parametrize("how", PLANTS)
def test_a_planted_public_key_file_is_derived_again_not_read(
        home: Path, tmp_path: Path, how: str) -> None:
    genuine = json.loads(ouro("key", "list", "--home", str(home), cwd=tmp_path).stdout)
    pub = home / "keys" / "root.pub"
    right = pub.read_text()
    victim = tmp_path / "other.pub"  # another key's .pub: read through, root's id would lie
    victim.write_text("ab" * 32 + "\n")
    plant(pub, how, victim, b"[]\n")
    child = ouro("key", "list", "--home", str(home), cwd=tmp_path)
    assert child.returncode == 0 and "Traceback" not in child.stderr, \
        (child.stdout, child.stderr[-2000:])
    assert json.loads(child.stdout) == genuine  # the id comes from the private key
    assert not pub.is_symlink() and pub.read_text() == right  # replaced, not written through
    assert victim.read_text() == "ab" * 32 + "\n"


def test_a_settings_file_behind_a_link_is_read_through_and_never_written_through(
        home: Path, tmp_path: Path) -> None:
    """A dotfiles-style link is the user's own setup: read, but `config set` renames a
    file over the link instead of writing into whatever it points at."""
    dotfiles = tmp_path / "dotfiles.toml"
    dotfiles.write_text('[llm]\nmodel = "from-dotfiles"\n')
    (home / "ouro.toml").unlink(missing_ok=True)
    (home / "ouro.toml").symlink_to(dotfiles)
    shown = ouro("config", "show", "--home", str(home), cwd=tmp_path)
    assert shown.returncode == 0 and "from-dotfiles" in shown.stdout, shown.stdout
    from ouroboros.kernel.settings import write_settings

    write_settings(home / "ouro.toml", {("llm", "model"): "local"})  # as `improve connect`
    assert dotfiles.read_text() == '[llm]\nmodel = "from-dotfiles"\n'  # not written through
    assert not (home / "ouro.toml").is_symlink()
    assert 'model = "local"' in (home / "ouro.toml").read_text()
