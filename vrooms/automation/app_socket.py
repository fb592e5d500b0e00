"""The app's WebSocket that media streaming and transcription write to: opened at an address the
egress policy allows, written with a stall limit, closed without waiting on an app that reads
nothing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from vrooms.egress import EgressPolicy, EgressRefused

_CONNECT_SECONDS = 10.0
_CLOSE_SECONDS = 2.0
# A message that cannot be handed to the socket in this long means the app stopped reading.
_STALL_SECONDS = 5.0
_SEND_BUFFER_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1 << 20


class AppSocketFailed(Exception):
    """The WebSocket could not be opened, or the app closed it or stopped reading."""


async def open_app_socket(url: str, egress: EgressPolicy) -> ClientConnection:
    """Checked now, and connected to by address: a name that resolves elsewhere a moment later
    changes nothing."""
    try:
        addresses = await egress.check(url, ("ws", "wss"))
        by_address: dict[str, Any] = {"host": addresses[0]} if addresses else {}
        connection = await websockets.connect(
            url,
            open_timeout=_CONNECT_SECONDS,
            close_timeout=_CLOSE_SECONDS,
            max_size=MAX_MESSAGE_BYTES,
            **by_address,
        )
    except EgressRefused as exc:
        raise AppSocketFailed(f"transportUrl refused: {exc}") from None
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise AppSocketFailed(f"could not open the WebSocket: {exc}") from None
    # Real time: a consumer more than a moment behind is stalled, not late. A small send buffer
    # makes a stall show as a send that does not finish (``_STALL_SECONDS``).
    raw = connection.transport.get_extra_info("socket")
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
    connection.transport.set_write_buffer_limits(high=_SEND_BUFFER_BYTES)
    return connection


async def send(connection: ClientConnection, message: str) -> None:
    try:
        await asyncio.wait_for(connection.send(message), _STALL_SECONDS)
    except TimeoutError:
        raise AppSocketFailed("the app stopped reading the WebSocket") from None
    except websockets.ConnectionClosed:
        raise AppSocketFailed("the app closed the WebSocket") from None


async def close(connection: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), _CLOSE_SECONDS)
    connection.transport.abort()  # a consumer that reads nothing never completes the close
