"""One HTTP POST under an overall deadline and a response-size cap.

A per-read timeout does not bound a request: a server that drips one byte every few
seconds keeps every read short and the request alive forever. Here every network
operation (connect, TLS, each write, each read) gets at most the time left until the
request's deadline, through httpcore's network-backend interface, so the whole exchange
ends by the deadline whatever the server does. The body is read in chunks and dropped as
soon as it passes the cap. Each request has a pool of its own, closed with it: nothing
lingers between requests and nothing is shared between threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore2 as httpcore

from .errors import AnswerTooLarge, LLMTimeout, LLMUnreachable


@dataclass(frozen=True)
class HTTPResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Deadline:
    def __init__(self, at: float) -> None:
        self.at = at

    def cap(self, timeout: float | None, error: type[Exception]) -> float:
        """The time an operation may take: what it asked for, but never past the deadline."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("deadline reached")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      self._deadline.cap(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._deadline.cap(timeout, httpcore.ConnectTimeout), local_address,
            socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for LLM endpoints")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self._deadline.at - time.monotonic())))


def post(url: str, body: bytes, headers: Mapping[str, str], *, deadline: float,
         max_bytes: int) -> HTTPResponse:
    """POST `body` and read the whole answer by `deadline` (a `time.monotonic()` value).

    Raises:
        LLMTimeout: the deadline passed (connecting, sending, waiting or reading).
        LLMUnreachable: the connection failed or broke, or the URL is unusable.
        AnswerTooLarge: the body passed `max_bytes`.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise LLMTimeout("the deadline passed before the request was sent")
    timeouts = {"connect": left, "read": left, "write": left, "pool": left}
    sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    try:
        with httpcore.ConnectionPool(network_backend=_DeadlineBackend(_Deadline(deadline)),
                                     max_connections=1, retries=0) as pool, pool.stream(
                "POST", url, headers=sent, content=body,
                extensions={"timeout": timeouts}) as response:
            got = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in response.headers}
            declared = got.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise AnswerTooLarge(f"the LLM answer declares {declared} bytes, over the "
                                     f"{max_bytes}-byte cap")
            chunks, size = [], 0
            for chunk in response.iter_stream():
                size += len(chunk)
                if size > max_bytes:
                    raise AnswerTooLarge(f"the LLM answer passed the {max_bytes}-byte cap; "
                                         "it was not read further")
                chunks.append(chunk)
            return HTTPResponse(response.status, got, b"".join(chunks))
    except httpcore.TimeoutException as e:
        raise LLMTimeout("the LLM endpoint did not answer in time: the request's deadline "
                         "passed (the server is slow, dripping its answer, or hung)") from e
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
            OSError) as e:
        raise LLMUnreachable(f"{type(e).__name__}: {e}") from e
