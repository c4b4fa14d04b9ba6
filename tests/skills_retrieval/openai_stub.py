"""A scripted OpenAI-compatible chat server on 127.0.0.1, so the real `openai` client runs.

Each POST /v1/chat/completions pops the next scripted reply: a string (assistant content)
or a list of (function name, arguments) pairs (tool calls). Requests are kept for asserts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | list[tuple[str, Any]] | Callable[[dict[str, Any]], Any]


class ChatStub:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                stub.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                if stub.status != 200:
                    self._send(stub.status, {"error": {"message": "scripted failure",
                                                       "type": "server_error"}})
                    return
                if not stub.replies:
                    self._send(500, {"error": {"message": "stub has no scripted reply left"}})
                    return
                reply = stub.replies.pop(0)
                if callable(reply):
                    reply = reply(body)
                self._send(200, completion(reply, body.get("model", "stub")))

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def user_messages(self, i: int) -> list[str]:
        return [m["content"] for m in self.requests[i]["body"]["messages"] if m["role"] == "user"]


def completion(reply: Any, model: str) -> dict[str, Any]:
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
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
