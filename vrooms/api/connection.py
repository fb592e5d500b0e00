"""HTTP/1.1 connections on the public port: bounded before any request reaches the app.

uvicorn's httptools protocol (llhttp, in C: a third faster than h11 on ``GET /ping`` in
BENCHMARKS.md) with three changes:

* a limit on the request head (httptools alone reads headers of any size: one 128 MiB
  header was read and answered 200);
* a deadline for the request head: uvicorn's keep-alive timer is cancelled by any byte,
  so a client sending one header byte every few seconds (slowloris) held a connection for
  ever; here the timer runs from the connection's start (or the previous response) until
  the head is complete;
* a malformed or oversized head is answered in the ACS error shape, not plain text, and
  with a lingering close so that the client can read that answer.

The body has its own deadline where the app reads it (``vrooms.api.bodies``).
"""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vrooms.api.responses import dumps
from vrooms.config import Settings
from vrooms.errors import ApiError

MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 2.0


@functools.cache
def _head_timeout() -> float:
    # uvicorn builds the protocol itself; workers get their settings from the environment.
    return Settings().http_head_timeout_seconds


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into a parser error, a 400."""


class BoundedHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.lingering = False
        self._start_head()
        self.timeout_keep_alive_task = self.loop.call_later(_head_timeout(), self.timeout_keep_alive_handler)

    def _start_head(self) -> None:
        # Two counts: what the parser handed over (exact, even for a head read in one go),
        # and the bytes read while the head is incomplete (httptools buffers a header
        # until it ends, so one endless header shows only there).
        self.in_head, self.head_parsed, self.head_read = True, 0, 0

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # after a refusal: read and drop, see send_400_response
        # uvicorn cancels the timer on any byte: hide it, and keep it while the head is incomplete.
        deadline, self.timeout_keep_alive_task = self.timeout_keep_alive_task, None
        super().data_received(data)
        if deadline is not None:
            if self.in_head and self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = deadline
            else:
                deadline.cancel()
        if self.in_head:
            self.head_read += len(data)
            if self.head_read > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.send_400_response("the request head is too large")

    def _count(self, size: int) -> None:
        self.head_parsed += size
        if self.head_parsed > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._unset_keepalive_if_required()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        error = ApiError(
            400, "BadRequest", f"Malformed HTTP request, or a request head over {MAX_HEAD_BYTES // 1024} KiB: {msg}"
        )
        body = dumps(error.to_wire())
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            + b"x-ms-error-code: " + error.code.encode() + b"\r\n"
            + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )  # fmt: skip
        self.transport.write(head + body)
        # Closing with the rest of an oversized head unread would reset the connection,
        # and the client could lose the answer before reading it.
        self.lingering = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
