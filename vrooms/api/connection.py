"""HTTP/1.1 connections on the public port: bounded before any request reaches the app.

uvicorn's h11 protocol (h11 limits the buffered request head; httptools, uvicorn's
default, reads headers of any size) with two changes:

* a deadline for the request head: uvicorn's keep-alive timer is cancelled by any byte,
  so a client sending one header byte every few seconds (slowloris) held a connection
  for ever; here the timer runs from the connection's start (or the previous response)
  until the head is complete;
* a malformed or oversized head is answered in the ACS error shape, not plain text.

The body has its own deadline where the app reads it (``vrooms.api.bodies``).
"""

from __future__ import annotations

import asyncio
import functools

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from vrooms.api.responses import dumps
from vrooms.config import Settings
from vrooms.errors import ApiError

MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 2.0


@functools.cache
def _head_timeout() -> float:
    # uvicorn builds the protocol itself; workers get their settings from the environment.
    return Settings().http_head_timeout_seconds


class BoundedH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.lingering = False
        self.timeout_keep_alive_task = self.loop.call_later(_head_timeout(), self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # after a refusal: read and drop, see send_400_response
        # Unlike uvicorn, keep the timer: ``handle_events`` cancels it once a whole head arrived.
        self.conn.receive_data(data)
        self.handle_events()

    def send_400_response(self, msg: str) -> None:
        error = ApiError(
            400,
            "BadRequest",
            f"Malformed HTTP request, or a request head over {MAX_HEAD_BYTES // 1024} KiB: {msg}",
        )
        body = dumps(error.to_wire())
        headers = [
            (b"content-type", b"application/json"),
            (b"x-ms-error-code", error.code.encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        # Lingering close: closing with the rest of an oversized head unread would reset
        # the connection, and the client could lose the answer before reading it.
        self.lingering = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
