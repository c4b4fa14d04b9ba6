"""Input limits in front of every route: Host names, body size, encodings, JSON depth.

One pure-ASGI middleware, outermost, so nothing behind it ever sees a request that breaks
a limit, and every refusal has the one error shape:

- **Host**: when the server listens on loopback, only loopback names are accepted (a web
  page that rebinds its own DNS name to 127.0.0.1 cannot reach the server through a
  browser); with ``--allow-remote`` the names given with ``--allowed-host``.
- **Size**: a body over its route's cap is refused with 413 as soon as its
  ``Content-Length`` or its bytes so far say so; nothing is buffered past the cap.
- **Encoding**: only the OTLP routes accept ``Content-Encoding: gzip`` (they inflate it
  under their own cap); elsewhere an encoded body is 415. A transfer coding other than
  ``chunked`` is 501 (the parser would hand its bytes on undecoded).
- **Depth**: a JSON body nested deeper than the cap is 400 before any parser recurses.
- **Whole**: a request whose client hangs up before its body is complete goes no further
  (a truncated body can still parse, and was acted on).
- **Time**: the whole body must arrive within ``body_timeout`` seconds of the headers, or
  the answer is 408 and the connection is closed (a client that stalls or trickles its
  body holds a connection and a task for that long at most; uvicorn has no body deadline).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouroboros.interfaces.http.errors import error_response

# A string that never closes runs to the end of the body: a parser reads what follows as
# its text too (and stops there with an error); were it left unmatched, the search would
# retry from every later quote, quadratic in the body.
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects deeper than ``limit``.

    Strings are removed first (a bracket inside a string is text); a body with no more
    opening brackets than the limit cannot be too deep and is not scanned at all.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", body)):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def host_name(value: str) -> str:
    """The name part of a Host header (``[::1]:8750`` → ``[::1]``, ``a.b:80`` → ``a.b``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class Limits:
    """The caps; ``allowed_hosts`` None admits any Host."""

    max_body_bytes: int = 1 << 20
    max_otlp_bytes: int = 8 << 20
    max_json_depth: int = 64
    body_timeout: float = 60.0
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    otlp_paths: Collection[str] = ("/v1/traces", "/v1/logs")


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class _Gone(Exception):
    pass


class InputGuard:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        limits = self.limits
        if sum(1 for k, _ in scope.get("headers", []) if k.lower() == b"host") > 1:
            # RFC 9112 3.2; the check below would read the last, the routes the first
            await error_response(400, "bad_host", "the request has more than one Host "
                                 "header", "send one Host header")(scope, receive, send)
            return
        if limits.allowed_hosts is not None:
            host = host_name(headers.get("host", ""))
            if host not in limits.allowed_hosts:
                await error_response(400, "bad_host", f"Host {host or '(none)'!r} is not "
                                     "served here", "use the address the server was started "
                                     "with (see --allowed-host)")(scope, receive, send)
                return
        codings = [c.strip().lower() for c in headers.get("transfer-encoding", "").split(",")]
        if [c for c in codings if c] not in ([], ["chunked"]):
            # the parser de-chunks and passes any other coding on undecoded (RFC 9112 6.1)
            await error_response(501, "not_implemented", "Transfer-Encoding "
                                 f"{headers['transfer-encoding']!r} is not supported",
                                 "send the body chunked or with a Content-Length (OTLP "
                                 "routes accept Content-Encoding: gzip)",
                                 headers={"Connection": "close"})(scope, receive, send)
            return
        otlp = scope["path"] in limits.otlp_paths
        cap = limits.max_otlp_bytes if otlp else limits.max_body_bytes
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity") and not (otlp and encoding == "gzip"):
            await error_response(415, "unsupported_media_type",
                                 f"Content-Encoding {encoding!r} is not accepted here",
                                 "send the body unencoded (OTLP routes accept gzip)")(
                scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await self._too_large(cap, scope, receive, send)
            return
        try:
            body = await _read_body(receive, cap, limits.body_timeout)
        except _TooLarge:
            await self._too_large(cap, scope, receive, send)
            return
        except _Gone:  # the client hung up before its body was whole: nothing to act on
            return
        except _TooSlow:
            await error_response(408, "request_timeout", "the request body did not arrive "
                                 f"within {limits.body_timeout:g} s", "send the whole body "
                                 "at once", headers={"Connection": "close"})(
                scope, receive, send)
            return
        content_type = headers.get("content-type", "")
        if (body and encoding in ("", "identity") and ("json" in content_type or not content_type)
                and json_too_deep(body, limits.max_json_depth)):
            await error_response(400, "too_deep", f"the JSON body nests deeper than "
                                 f"{limits.max_json_depth} levels")(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _too_large(cap: int, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, "payload_too_large", f"the body is over {cap} bytes",
                             "send less per request", headers={"Connection": "close"})(
            scope, receive, send)


async def _read_body(receive: Receive, cap: int, timeout: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    deadline = anyio.current_time() + timeout
    while True:
        with anyio.move_on_after(deadline - anyio.current_time()) as scope:
            message = await receive()
        if scope.cancelled_caught:
            raise _TooSlow
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
