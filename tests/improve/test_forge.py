"""The forge adapter against the fake forge: GitHub's and GitLab's REST shapes, auth,
and answers it must not trust."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.improve.proposals.forge import (
    ForgeError,
    GitHubForge,
    GitLabForge,
    forge_from_settings,
)
from ouroboros.kernel.settings import ForgeSettings

from .fakeforge import TOKEN, FakeForge, git


@pytest.fixture(params=["github", "gitlab"])
def forge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeForge]:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a")
    git(repo, "checkout", "-q", "-b", "ouro/proposal-abc123")
    (repo / "a.txt").write_text("b\n")
    git(repo, "commit", "-q", "-am", "b")
    git(repo, "checkout", "-q", "main")
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(tmp_path / "r.git"))
    f = FakeForge(tmp_path / "r.git", request.param)
    yield f
    f.close()


def client(f: FakeForge, token: str | None = TOKEN) -> GitHubForge | GitLabForge:
    settings = ForgeSettings(kind=f.kind, api_url=f.url, repository="acme/service")
    made = forge_from_settings(settings, env={"OURO_FORGE_TOKEN": token} if token else {})
    assert made is not None
    return made


def test_open_read_and_merge_state(forge: FakeForge) -> None:
    c = client(forge)
    pull = c.open_pull("ouro/proposal-abc123", "main", "[ouro] t", "body")
    assert pull.number == 1 and pull.url.startswith(forge.url)
    assert c.pull_state(1).state == "open"
    sha = forge.merge(1)
    state = c.pull_state(1)
    assert state.state == "merged" and state.merge_commit == sha and state.merged_by == "alice"
    c.comment(1, "thanks")
    assert forge.comments == [(1, "thanks")]
    path = forge.requests[0]["path"]
    assert path == ("/repos/acme/service/pulls" if forge.kind == "github"
                    else "/projects/acme%2Fservice/merge_requests")


def test_a_bad_token_is_an_error_that_never_shows_the_token(forge: FakeForge) -> None:
    with pytest.raises(ForgeError) as e:
        client(forge, "wrong-token-SECRET").open_pull("b", "main", "t", "x")
    assert "401" in str(e.value) and "SECRET" not in str(e.value)


class Hostile:
    def __init__(self, reply: bytes, status: int = 200) -> None:
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(outer.reply)))
                self.end_headers()
                self.wfile.write(outer.reply)

            do_POST = do_GET

        self.reply, self.status = reply, status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("reply", "status", "needle"), [
    (b"<html>", 200, "not JSON"),
    (json.dumps({"number": "one", "html_url": 3}).encode(), 200, "unexpected answer"),
    (json.dumps({"number": 1, "html_url": "x", "state": "open",
                 "padding": "x" * (2 << 20)}).encode(), 200, "larger than"),
    (b"\x1b[31mred\x00", 500, "HTTP 500"),
    (json.dumps({"number": 1, "html_url": "u", "state": "weird"}).encode(), 200,
     "unexpected answer"),
])
def test_answers_it_cannot_trust_are_errors(reply: bytes, status: int, needle: str) -> None:
    server = Hostile(reply, status)
    try:
        with pytest.raises(ForgeError) as e:
            GitHubForge(server.url, "acme/service", "t").pull_state(1)
        assert needle in str(e.value) and "\x1b" not in str(e.value)
    finally:
        server.close()


def test_unreachable_forge_is_an_error() -> None:
    with pytest.raises(ForgeError):
        GitHubForge("http://127.0.0.1:9", "acme/service", "t", timeout=2).pull_state(1)
