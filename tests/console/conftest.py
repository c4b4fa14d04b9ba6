from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve.live import LiveServer, start

from .workspace import Workspace, build


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build(tmp_path_factory.mktemp("console") / "ws")


@pytest.fixture(scope="module")
def live(workspace: Workspace) -> Iterator[LiveServer]:
    """The real server on the module's workspace (no scheduled work)."""
    server = start(workspace.home, "--no-scheduler")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0, err
        assert "Traceback" not in err, err


_LOGIN = re.compile(r'name="login" value="([0-9a-f]{64})"')
_CSRF = re.compile(r'name="csrf" value="([A-Za-z0-9_-]{43})"')


def login_mac(page_html: str) -> str:
    found = _LOGIN.search(page_html)
    assert found, "the login form has no login field"
    return found.group(1)


def csrf_of(page_html: str) -> str:
    found = _CSRF.search(page_html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@contextlib.contextmanager
def logged_in(live: LiveServer, token: str) -> Iterator[httpx.Client]:
    """An httpx client holding a console session for ``token`` (as a browser would)."""
    with httpx.Client(base_url=live.url, timeout=60.0, follow_redirects=False) as client:
        form = client.get("/login")
        r = client.post("/login", data={"login": login_mac(form.text), "token": token,
                                        "next": "/"})
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        yield client


def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots ($OURO_CONSOLE_SCREENSHOTS, else a
    directory of the test run's own)."""
    import os

    chosen = os.environ.get("OURO_CONSOLE_SCREENSHOTS")
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("console-screenshots")
