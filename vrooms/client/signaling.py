"""The client side of the signaling WebSocket (protocol v1, docs/calling-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import ssl
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_REQUEST_TIMEOUT_SECONDS = 20.0


class CallError(Exception):
    """The server refused a request; ``code`` is the protocol's reason code (e.g. NotOnRoster)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def websocket_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/calling/v1"


def ssl_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    # The same variable the Azure SDKs (requests) honour, so one setting serves both.
    cafile = ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=cafile)


class Signaling:
    """Requests with replies matched by ``id``; everything else goes to ``on_event``."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.hello: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def open(self, endpoint: str, token: str, *, ca_file: str | None, user_agent: str) -> None:
        url = websocket_url(endpoint)
        self._ws = await connect(
            url,
            ssl=ssl_context(url, ca_file),
            additional_headers={"Authorization": f"Bearer {token}"},
            user_agent_header=user_agent,
            max_size=1024 * 1024,
            open_timeout=10,
        )
        first = orjson.loads(await self._ws.recv())
        if first.get("type") == "error":
            await self._ws.close()
            raise CallError(first.get("code", "Refused"), first.get("message", ""))
        self.hello = first
        self._reader = asyncio.create_task(self._read())

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one message and wait for its result; raises CallError on an error reply."""
        if self._ws is None or self.closed.is_set():
            raise CallError("NotConnected", "The signaling connection is closed.")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(orjson.dumps({**message, "id": request_id}).decode())
            reply = await asyncio.wait_for(future, _REQUEST_TIMEOUT_SECONDS)
        except ConnectionClosed as exc:
            raise CallError("NotConnected", "The signaling connection closed.") from exc
        finally:
            self._pending.pop(request_id, None)
        if reply.get("type") == "error":
            raise CallError(reply.get("code", "Error"), reply.get("message", ""))
        return reply

    async def send_raw(self, text: str) -> None:
        """Send anything at all (tests use it to play a cheating client)."""
        assert self._ws is not None
        await self._ws.send(text)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                message = orjson.loads(raw)
                future = self._pending.get(message.get("id")) if message.get("type") in ("result", "error") else None
                if future is not None and not future.done():
                    future.set_result(message)
                else:
                    self.on_event(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CallError("NotConnected", "The signaling connection closed."))
            self.on_event({"type": "connectionClosed"})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
