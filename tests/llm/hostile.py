"""A scripted OpenAI-compatible chat server on 127.0.0.1 that can play a hostile model.

The real client speaks real HTTP to it. Each POST /v1/chat/completions takes the next step of
`replies` (a step is also allowed to be a callable of the request body returning a step):

- a string: an assistant message with that content;
- a list of (function name, arguments) pairs: tool calls (arguments as JSON text if a str);
- `Status(code, retry_after=None, message=...)`: an HTTP error;
- `Raw(body, status=200, headers=...)`: exactly these bytes (malformed shapes, non-JSON);
- `Drip(body, every_s, chunk=1, headers_too=False, declare_length=True)`: the answer a
  few bytes at a time (or, without a length, until the connection closes);
- `Hang()`: accept the request and never answer (until the server closes);
- `Huge(n)`: a syntactically valid completion whose content is n bytes long.

Every request is kept in `requests` ({"body", "auth", "bytes"}) for asserts. With no step
left the server answers 400 (not retried), so a test that under-scripts fails loudly rather than hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Raw:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Drip:
    body: bytes
    every_s: float = 0.2
    chunk: int = 1
    headers_too: bool = False
    declare_length: bool = True  # False: no Content-Length, the body ends when we close


@dataclass(frozen=True)
class Hang:
    pass


@dataclass(frozen=True)
class Huge:
    size: int


Step = Any  # str | list[tuple[str, Any]] | Status | Raw | Drip | Hang | Huge | Callable


def completion(reply: Any, model: str = "hostile") -> dict[str, Any]:
    """The JSON of a well-formed chat completion for a content string or tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if isinstance(reply, str):
        message["content"] = reply
    else:
        finish = "tool_calls"
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name,
                          "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for i, (name, args) in enumerate(reply)
        ]
    return {"id": "chatcmpl-hostile", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def body_of(reply: Any, model: str = "hostile") -> bytes:
    return json.dumps(completion(reply, model)).encode()


class HostileLLM:
    """The server; `replies` is its script. Close it (the fixtures do) to release hung calls."""

    def __init__(self) -> None:
        self.replies: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self.status = 200  # a blanket status for every request (the old stub's switch)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"_unparsed": raw[:200].decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append({"body": body, "bytes": len(raw),
                                            "auth": self.headers.get("Authorization")})
                    step: Step = Status(server.status) if server.status != 200 else (
                        server.replies.pop(0) if server.replies
                        else Status(400, message="the hostile server has no scripted reply left"))
                if callable(step) and not isinstance(step, type):
                    step = step(body)
                self._play(step, body.get("model", "hostile") if isinstance(body, dict)
                           else "hostile")

            def _play(self, step: Step, model: str) -> None:
                if isinstance(step, Status):
                    headers = {} if step.retry_after is None else {
                        "Retry-After": f"{step.retry_after:g}"}
                    self._json(step.code, {"error": {"message": step.message,
                                                     "type": "server_error"}}, headers)
                elif isinstance(step, Raw):
                    self._send(step.status, step.body, step.headers)
                elif isinstance(step, Drip):
                    self._drip(step)
                elif isinstance(step, Hang):
                    server._stop.wait(120)
                elif isinstance(step, Huge):
                    filler = "x" * step.size
                    self._send(200, body_of(filler, model), {"Content-Type": "application/json"})
                else:
                    self._send(200, body_of(step, model), {"Content-Type": "application/json"})

            def _json(self, code: int, payload: Any, headers: dict[str, str] | None = None
                      ) -> None:
                self._send(code, json.dumps(payload).encode(),
                           {"Content-Type": "application/json", **(headers or {})})

            def _send(self, code: int, data: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(code)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up: that is what the test wanted

            def _drip(self, step: Drip) -> None:
                length = (f"Content-Length: {len(step.body)}\r\n" if step.declare_length
                          else "Connection: close\r\n")
                self.close_connection = not step.declare_length
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"{length}\r\n").encode()
                data = step.body if not step.headers_too else head + step.body
                try:
                    if not step.headers_too:
                        self.wfile.write(head)
                        self.wfile.flush()
                    for i in range(0, len(data), step.chunk):
                        if step.every_s and server._stop.wait(step.every_s):
                            return
                        self.wfile.write(data[i:i + step.chunk])
                        self.wfile.flush()
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    # -- reading what the client sent ---------------------------------------------------
    def messages(self, i: int) -> list[dict[str, Any]]:
        return list(self.requests[i]["body"]["messages"])

    def user_messages(self, i: int) -> list[str]:
        return [m["content"] for m in self.messages(i) if m["role"] == "user"]

    def system_message(self, i: int) -> str:
        return next(m["content"] for m in self.messages(i) if m["role"] == "system")

    def all_text(self) -> str:
        """Everything every request carried (to prove what never reached the model)."""
        return "\n".join(json.dumps(r["body"]) for r in self.requests)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result or the exception raised, seconds taken)."""
    start = time.monotonic()
    try:
        out: Any = fn()
    except Exception as e:
        out = e
    return out, time.monotonic() - start
