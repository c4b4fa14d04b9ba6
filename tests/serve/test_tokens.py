"""`ouro token`: printed once, stored as a hash in a 0600 file, revoked at once; the check
takes the same path whatever is wrong with a token."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.interfaces.http.tokens import Role, TokenStore, hash_token
from ouroboros.kernel.errors import NotFound, UsageError

from .conftest import new_workspace


def ouro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return new_workspace(tmp_path / "ws")


def test_token_new_prints_the_token_once_and_stores_only_its_hash(home: Path) -> None:
    r = ouro("token", "new", "ci", "--role", "submit", "--home", str(home), "--json")
    assert r.returncode == 0, r.stderr
    issued = json.loads(r.stdout)
    token = issued["token"]
    stored = (home / "serve" / "tokens.json").read_text()
    # the secret is the part after "ouro_<id>_"; it may itself contain "_" (base64url)
    assert token not in stored and token.split("_", 2)[2] not in stored
    assert hash_token(token) in stored
    mode = stat.S_IMODE((home / "serve" / "tokens.json").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((home / "serve").stat().st_mode) == 0o700
    listed = json.loads(ouro("token", "list", "--home", str(home), "--json").stdout)
    assert listed == [{k: issued[k] for k in ("id", "name", "role", "key", "created")}]
    assert "token" not in listed[0] and "hash" not in listed[0]


def test_approve_tokens_need_a_real_key_and_read_tokens_take_none(home: Path) -> None:
    no_key = ouro("token", "new", "a", "--role", "approve", "--home", str(home))
    assert no_key.returncode == 2 and "--key" in no_key.stderr
    unknown = ouro("token", "new", "a", "--role", "approve", "--key", "nobody",
                   "--home", str(home))
    assert unknown.returncode == 2 and "nobody" in unknown.stderr
    keyed_read = ouro("token", "new", "r", "--role", "read", "--key", "root", "--home", str(home))
    assert keyed_read.returncode == 2
    bad_role = ouro("token", "new", "x", "--role", "superuser", "--home", str(home))
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    assert TokenStore(home).list() == []  # nothing half-issued
    ok = ouro("token", "new", "a", "--role", "approve", "--key", "root", "--home", str(home))
    assert ok.returncode == 0, ok.stderr


def test_revoke_by_name_or_id_and_unknown_names(home: Path) -> None:
    store = TokenStore(home)
    token, _ = store.new("one", Role.read)
    _, other = store.new("two", Role.read)
    assert store.verify(token) is not None
    assert ouro("token", "revoke", "one", "--home", str(home)).returncode == 0
    assert store.verify(token) is None
    assert ouro("token", "revoke", other.id, "--home", str(home)).returncode == 0
    r = ouro("token", "revoke", "ghost", "--home", str(home), "--json")
    assert r.returncode == 2
    with pytest.raises(NotFound):
        store.revoke("one")


def test_names_are_unique_and_well_formed(home: Path) -> None:
    store = TokenStore(home)
    store.new("same", Role.read)
    with pytest.raises(UsageError):
        store.new("same", Role.admin, "root")
    for bad in ("", "../x", "a b", "x" * 65, "é"):
        with pytest.raises(UsageError):
            store.new(bad, Role.read)


@pytest.mark.parametrize("forged", [
    "", "Bearer", "ouro_", "ouro_000000000000_" + "A" * 43,
    "ouro_zzzzzzzzzzzz_" + "A" * 43, "x" * 10_000, "ouro_\x00", "ouro_ä_ö",
])
def test_malformed_and_forged_tokens_are_refused(home: Path, forged: str) -> None:
    store = TokenStore(home)
    store.new("real", Role.admin, "root")
    assert store.verify(forged) is None


def test_a_token_with_one_secret_character_changed_is_refused(home: Path) -> None:
    store = TokenStore(home)
    token, _ = store.new("real", Role.read)
    for i in range(len("ouro_") + 13, len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert store.verify(flipped) is None
    assert store.verify(token) is not None


def test_every_check_hashes_and_compares_whatever_is_wrong(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing safety by construction: the unknown-id and malformed paths do the same
    hash-and-compare_digest work as a wrong secret, so their time tells nothing."""
    import ouroboros.interfaces.http.tokens as tokens

    store = TokenStore(home)
    token, _ = store.new("real", Role.read)
    calls: list[tuple[str, str]] = []
    real = tokens.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    unknown_id = "ouro_" + "0" * 12 + token[17:]
    wrong_secret = token[:-1] + ("A" if token[-1] != "A" else "B")
    for candidate in (unknown_id, wrong_secret, "garbage", token):
        store.verify(candidate)
    assert len(calls) == 4
    assert all(len(a) == len(b) == 64 for a, b in calls)


def test_a_damaged_token_file_is_a_clear_error(home: Path) -> None:
    store = TokenStore(home)
    store.new("one", Role.read)
    (home / "serve" / "tokens.json").write_text("{not json")
    r = ouro("token", "list", "--home", str(home))
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr
