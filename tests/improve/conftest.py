"""A local OpenAI-compatible endpoint on 127.0.0.1 so the real ``openai`` client runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llm.hostile import HostileLLM

from .ownrepo import World, make_world


@dataclass
class ScriptedLLM:
    """Answers chat completions from a script and records every request body."""

    answers: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    base_url: str = ""


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            llm.requests.append({"path": self.path, "body": body})
            if llm.status != 200:
                payload = json.dumps(
                    {"error": {"message": "boom", "type": "server_error"}}
                ).encode()
                self.send_response(llm.status)
            else:
                content = llm.answers.pop(0) if llm.answers else '{"findings": []}'
                payload = json.dumps(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()  # fmt: skip
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    llm.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileLLM]:
    """A scripted, hostile OpenAI-compatible server playing the writer."""
    server = HostileLLM()
    yield server
    server.close()


@pytest.fixture
def world(tmp_path: Path, hostile: HostileLLM) -> Iterator[World]:
    """The user's own repository with the loop attached and the writer at ``hostile``
    (a module may narrow it, e.g. one attempt)."""
    yield from make_world(tmp_path, hostile.base_url)
