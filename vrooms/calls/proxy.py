"""The public signaling endpoint in the REST workers: a byte-for-byte relay to the call host.

Workers share the public port, so any of them may accept a client; the call host
owns the calls. The relay keeps the client's token, user agent and close codes.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

from vrooms.calls import protocol
from vrooms.calls.models import Refusal

_FORWARDED_HEADERS = ("authorization", "user-agent")
_CLOSE_TRY_AGAIN_LATER = 1013


async def _client_to_host(websocket: WebSocket, upstream: ClientConnection) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await upstream.send(await websocket.receive_text())
    await upstream.close()


async def _host_to_client(websocket: WebSocket, upstream: ClientConnection) -> None:
    try:
        async for message in upstream:
            await websocket.send_text(message if isinstance(message, str) else message.decode())
    except ConnectionClosed:
        pass
    code = upstream.close_code or 1000
    with contextlib.suppress(RuntimeError):
        await websocket.close(code if code != 1006 else 1011, upstream.close_reason or "")


async def signaling_proxy(websocket: WebSocket) -> None:
    path = websocket.app.state.services.settings.signaling_socket
    query = f"?{websocket.url.query}" if websocket.url.query else ""
    headers = {name: websocket.headers[name] for name in _FORWARDED_HEADERS if name in websocket.headers}
    try:
        upstream = await unix_connect(
            str(path), f"ws://vrooms/calling/v1{query}", additional_headers=headers, max_size=1024 * 1024
        )
    except (OSError, TimeoutError):
        await websocket.accept()
        await websocket.send_json(protocol.error(None, Refusal.CALLS_UNAVAILABLE, "The call host is not running."))
        await websocket.close(_CLOSE_TRY_AGAIN_LATER)
        return
    await websocket.accept()
    relays = [
        asyncio.create_task(_client_to_host(websocket, upstream)),
        asyncio.create_task(_host_to_client(websocket, upstream)),
    ]
    try:
        await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for relay in relays:
            relay.cancel()
        await upstream.close()
