"""`ouro serve` re-reads its token file (`serve/tokens.json`) whenever it changes. A
workspace writer (any local process of the user) who puts a FIFO, a link to a device or
to another token file, a huge file or bytes that are not a token file there must make the
server fail closed (503, the cause in its log) and recover when the file is restored:
never a request thread blocked for ever (holding the store's lock, so every later request
too), memory read without bound, or tokens read through a link."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ouroboros.interfaces.http.tokens import TokenStore
from serve.live import start

from .plants import PLANTS, cap_memory, plant
from .test_workspace_files_unsafe import home  # noqa: F401 (a fixture)


@pytest.mark.parametrize("how", PLANTS)
def test_a_planted_token_file_fails_closed_and_the_server_recovers(
        home: Path, tmp_path: Path, how: str) -> None:  # noqa: F811 (the fixture)
    token, _ = TokenStore(home).new("one", "read")
    tokens = home / "serve" / "tokens.json"
    genuine = tokens.read_bytes()
    other = tmp_path / "other"  # another workspace's token file, with a token of its own
    other.mkdir()
    foreign, _ = TokenStore(other).new("stranger", "read")
    victim = other / "serve" / "tokens.json"
    before = victim.read_bytes()
    server = start(home, "--no-scheduler")
    cap = 3 << 30  # /dev/zero read whole would pass this and fail there, not fill the machine
    resource.prlimit(server.proc.pid, resource.RLIMIT_AS, (cap, cap))
    try:
        with server.client(token) as c:
            assert c.get("/api/v1/whoami").status_code == 200
            plant(tokens, how, victim, b'{"version": 1, "tokens": {"x": 1}}\n')
            for bearer in (token, foreign):
                r = c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {bearer}"})
                assert r.status_code == 503, (bearer == foreign, r.status_code, r.text)
                assert str(home) not in r.text
            assert c.get("/api/v1/health").status_code == 200
            tokens.unlink()
            tokens.write_bytes(genuine)
            assert c.get("/api/v1/whoami").status_code == 200  # restored: served again
    except httpx.TimeoutException:
        pytest.fail(f"the server hung on a {how} token file")
    finally:
        code, err = server.stop()
    assert code == 0 and "token store unreadable" in err and "tokens.json" in err
    assert victim.read_bytes() == before


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "link_to_victim"])
def test_the_token_commands_name_a_planted_token_file(
        home: Path, tmp_path: Path, how: str) -> None:  # noqa: F811 (the fixture)
    TokenStore(home).new("one", "read")
    tokens = home / "serve" / "tokens.json"
    victim = tmp_path / "victim.json"
    victim.write_bytes(tokens.read_bytes())
    plant(tokens, how, victim, b"")
    for args in (("list",), ("new", "two", "--role", "read"), ("revoke", "one")):
        child = subprocess.run([sys.executable, "-m", "ouroboros", "token", *args, "--home",
                                str(home), "--json"], capture_output=True, text=True,
                               timeout=30, preexec_fn=cap_memory)
        assert child.returncode == 2, (args, child.stdout, child.stderr[-2000:])
        assert "tokens.json" in json.loads(child.stdout)["error"]["message"]
    assert victim.read_bytes() == tokens.read_bytes() if how == "link_to_victim" else True
    assert json.loads(victim.read_text())["tokens"][0]["name"] == "one"  # not written through
