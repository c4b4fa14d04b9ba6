"""Pull requests on a forge: GitHub's and GitLab's REST APIs over HTTP (httpx).

One small interface (:class:`Forge`): open a pull request for a pushed proposal branch,
read its state, comment on it. Answers are validated by pydantic models of the two
APIs' documented shapes and read with a size cap; the token goes in a header and
nowhere else. What a forge says is a claim: the loop checks a reported merge against
the remote itself (:func:`remote.contains_change`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx2 as httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from ouroboros.kernel.settings import ForgeSettings

MAX_BODY = 1 << 20
State = Literal["open", "closed", "merged"]


class ForgeError(Exception):
    """The forge refused, was unreachable, or answered something we cannot read."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str


@dataclass(frozen=True)
class PullState:
    state: State
    merge_commit: str | None = None
    merged_by: str | None = None


class Forge(Protocol):
    def open_pull(self, branch: str, base: str, title: str, body: str) -> PullRequest: ...

    def pull_state(self, number: int) -> PullState: ...

    def comment(self, number: int, body: str) -> None: ...


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _User(_Lenient):
    login: str | None = None
    username: str | None = None


class _GitHubPull(_Lenient):
    number: int
    html_url: str
    state: Literal["open", "closed"]
    merged: bool | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    merged_by: _User | None = None


class _GitLabMR(_Lenient):
    iid: int
    web_url: str
    state: Literal["opened", "closed", "merged", "locked"]
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    merged_by: _User | None = None


class _HTTPForge:
    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float,
                 transport: httpx.BaseTransport | None) -> None:
        self._client = httpx.Client(base_url=base_url, headers=dict(headers),
                                    timeout=httpx.Timeout(timeout), transport=transport,
                                    follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        try:
            with self._client.stream(method, path, json=payload) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise ForgeError(f"{method} {path}: answer larger than {MAX_BODY} bytes")
                status = response.status_code
        except httpx.HTTPError as e:
            raise ForgeError(f"{method} {path}: {type(e).__name__}: {e}") from None
        if status >= 300:
            raise ForgeError(f"{method} {path}: HTTP {status}: {_message(body)}")
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise ForgeError(f"{method} {path}: the answer is not JSON") from None


def _message(body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _parse(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ForgeError(f"{what}: unexpected answer ({'.'.join(map(str, first['loc']))}: "
                         f"{first['msg']})") from None


class GitHubForge(_HTTPForge):
    """GitHub's REST API v3 (``/repos/{owner}/{repo}/pulls``)."""

    def __init__(self, base_url: str, repository: str, token: str | None, *,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "ouroboros"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        super().__init__(base_url, headers, timeout, transport)
        self._repo = "/repos/" + "/".join(quote(p, safe="") for p in repository.split("/"))

    def open_pull(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        data = self._call("POST", f"{self._repo}/pulls",
                          {"title": title, "head": branch, "base": base, "body": body})
        pull = _parse(_GitHubPull, data, "open pull request")
        return PullRequest(pull.number, pull.html_url)

    def pull_state(self, number: int) -> PullState:
        pull = _parse(_GitHubPull, self._call("GET", f"{self._repo}/pulls/{int(number)}"),
                      "pull request")
        if pull.merged or pull.merged_at:
            by = pull.merged_by.login if pull.merged_by else None
            return PullState("merged", pull.merge_commit_sha, by)
        return PullState("open" if pull.state == "open" else "closed")

    def comment(self, number: int, body: str) -> None:
        self._call("POST", f"{self._repo}/issues/{int(number)}/comments", {"body": body})


class GitLabForge(_HTTPForge):
    """GitLab's REST API v4 (``/projects/{id}/merge_requests``)."""

    def __init__(self, base_url: str, project: str, token: str | None, *,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"User-Agent": "ouroboros"}
        if token:
            headers["PRIVATE-TOKEN"] = token
        super().__init__(base_url, headers, timeout, transport)
        self._project = f"/projects/{quote(project, safe='')}"

    def open_pull(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        data = self._call("POST", f"{self._project}/merge_requests",
                          {"source_branch": branch, "target_branch": base, "title": title,
                           "description": body, "remove_source_branch": True})
        mr = _parse(_GitLabMR, data, "open merge request")
        return PullRequest(mr.iid, mr.web_url)

    def pull_state(self, number: int) -> PullState:
        mr = _parse(_GitLabMR, self._call("GET", f"{self._project}/merge_requests/{int(number)}"),
                    "merge request")
        if mr.state == "merged":
            by = mr.merged_by.username if mr.merged_by else None
            return PullState("merged", mr.merge_commit_sha or mr.squash_commit_sha, by)
        return PullState("open" if mr.state in ("opened", "locked") else "closed")

    def comment(self, number: int, body: str) -> None:
        self._call("POST", f"{self._project}/merge_requests/{int(number)}/notes", {"body": body})


def forge_from_settings(settings: ForgeSettings, env: Mapping[str, str] | None = None,
                        transport: httpx.BaseTransport | None = None
                        ) -> GitHubForge | GitLabForge | None:
    """The configured forge, or None (``kind = "none"``)."""
    if settings.kind == "none" or not settings.repository:
        return None
    token = (os.environ if env is None else env).get(settings.token_env)
    cls = GitHubForge if settings.kind == "github" else GitLabForge
    return cls(settings.base_url, settings.repository, token, transport=transport)
