"""A fake forge on 127.0.0.1 speaking the GitHub and GitLab REST shapes the adapter uses.

Pull requests are backed by a real bare repository on disk: `merge` does what a human's
click does (a real merge commit, or a squash commit, pushed to the bare remote's main) and
then reports it as the forge would; `lie` reports a merge that never happened.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "forge-token-123"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Human", "GIT_AUTHOR_EMAIL": "human@example.com",
           "GIT_COMMITTER_NAME": "Human", "GIT_COMMITTER_EMAIL": "human@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, env=env,
                         check=True)
    return out.stdout.decode()


class FakeForge:
    def __init__(self, remote: Path, kind: str = "github") -> None:
        self.remote = remote
        self.kind = kind
        self.pulls: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.comments: list[tuple[int, str]] = []
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if forge.kind == "github":
                    return self.headers.get("Authorization") == f"Bearer {TOKEN}"
                return self.headers.get("PRIVATE-TOKEN") == TOKEN

            def _handle(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                forge.requests.append({"method": method, "path": self.path, "body": body})
                if not self._authorised():
                    self._reply(401, {"message": "Bad credentials"})
                    return
                code, payload = forge.route(method, self.path, body)
                self._reply(code, payload)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- REST ---------------------------------------------------------------------------
    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.kind == "github":
            m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?", path)
            c = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", path)
        else:
            m = re.fullmatch(r"/projects/([^/]+)()/merge_requests(?:/(\d+))?", path)
            c = re.fullmatch(r"/projects/[^/]+/merge_requests/(\d+)/notes", path)
        if c and method == "POST":
            self.comments.append((int(c.group(1)), body["body"]))
            return 201, {"id": len(self.comments)}
        if not m:
            return 404, {"message": "Not Found"}
        number = m.group(3)
        if method == "POST" and number is None:
            n = len(self.pulls) + 1
            if self.kind == "github":
                pull = {"number": n, "html_url": f"{self.url}/acme/service/pull/{n}",
                        "state": "open", "merged": False, "merged_at": None,
                        "merge_commit_sha": None, "merged_by": None,
                        "head": {"ref": body["head"]}, "base": {"ref": body["base"]},
                        "title": body["title"], "body": body["body"]}
            else:
                pull = {"iid": n, "web_url": f"{self.url}/acme/service/-/merge_requests/{n}",
                        "state": "opened", "merge_commit_sha": None, "squash_commit_sha": None,
                        "merged_by": None, "source_branch": body["source_branch"],
                        "target_branch": body["target_branch"], "title": body["title"]}
            self.pulls[n] = pull
            return 201, pull
        if method == "GET" and number is not None and int(number) in self.pulls:
            return 200, self.pulls[int(number)]
        return 404, {"message": "Not Found"}

    # -- what a human (or a lying forge) does -------------------------------------------
    def _branch(self, n: int) -> str:
        p = self.pulls[n]
        return str(p["head"]["ref"] if self.kind == "github" else p["source_branch"])

    def merge(self, n: int, squash: bool = False) -> str:
        """Merge pull request ``n`` into the bare remote's main, as the forge's button does."""
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "w"
            git(Path(tmp), "clone", "-q", str(self.remote), str(work))
            branch = self._branch(n)
            if squash:
                git(work, "merge", "-q", "--squash", f"origin/{branch}")
                git(work, "commit", "-q", "-m", f"Squashed PR #{n}")
            else:
                git(work, "merge", "-q", "--no-ff", "-m", f"Merge PR #{n}", f"origin/{branch}")
            git(work, "push", "-q", "origin", "main")
            sha = git(work, "rev-parse", "HEAD").strip()
        self._mark_merged(n, sha)
        return sha

    def _mark_merged(self, n: int, sha: str) -> None:
        p = self.pulls[n]
        if self.kind == "github":
            p.update(state="closed", merged=True, merged_at="2026-01-11T00:00:00Z",
                     merge_commit_sha=sha, merged_by={"login": "alice"})
        else:
            p.update(state="merged", merge_commit_sha=sha, merged_by={"username": "alice"})

    def lie(self, n: int, sha: str) -> None:
        """Report pull request ``n`` merged as ``sha`` without touching the repository."""
        self._mark_merged(n, sha)

    def close_unmerged(self, n: int) -> None:
        self.pulls[n]["state"] = "closed"
