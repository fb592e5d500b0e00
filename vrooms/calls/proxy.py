"""The public signaling endpoint in the REST workers: a byte-for-byte relay to a call host.

Workers share the public port, so any of them may accept a client; a call host owns the
calls. The relay keeps the client's token, user agent and close codes.

In a cluster the connection starts at this node's call host (the user's presence:
invitations, pre-join checks) and follows the user's ``join`` to the node that holds the
room (``JoinRouter``): the relay opens a connection there, through that node's public
endpoint, and from then on sends the client's messages to it. A relay, not a redirect:
clients behind one address (a load balancer) never learn the nodes, and a join costs one
more WebSocket handshake between nodes, not a new connection from the client. When the
room's node goes away, the client's connection is closed with 1012 (service restart), which
clients answer by connecting again and joining again, through any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from vrooms.calls import protocol
from vrooms.calls.models import CallRefused, Refusal
from vrooms.metrics.catalog import SIGNALING_RELAYS

_FORWARDED_HEADERS = ("authorization", "user-agent")
# Set on a connection one node's relay opens to another: served there, never relayed again.
RELAYED_HEADER = "x-vrooms-relayed-by"
_CLOSE_TRY_AGAIN_LATER = 1013
_CLOSE_SERVICE_RESTART = 1012
_MAX_FRAME_BYTES = 1024 * 1024
_ROUTED_TYPES = ("join",)
# Each routed join costs a placement lookup (and maybe a WebSocket to another node): a client may
# join a few times in a row (coming back after a node's loss), not flood the bus.
_JOINS_PER_SECOND, _JOIN_BURST = 2.0, 10


@dataclass(frozen=True)
class Upstream:
    node: str
    # The node's public endpoint (its --advertise URL).
    endpoint: str


class JoinRouter(Protocol):
    async def route(self, room_id: str) -> Upstream | None:
        """The node whose call host takes a join to this room; None: this node's. Raises ``CallRefused``."""


class _Relay:
    def __init__(
        self, websocket: WebSocket, local: ClientConnection, router: JoinRouter | None, tls: ssl.SSLContext | None
    ) -> None:
        self.websocket = websocket
        self.local = local
        self.router = router
        self.tls = tls
        self.remote: ClientConnection | None = None
        self.remote_node: str | None = None
        self.joins = protocol.RequestBudget(per_second=_JOINS_PER_SECOND, burst=_JOIN_BURST)
        self._sending = asyncio.Lock()
        self._pumps: list[asyncio.Task[None]] = []
        self.done = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""

    async def to_client(self, text: str) -> None:
        async with self._sending:
            await self.websocket.send_text(text)

    def finish(self, code: int, reason: str) -> None:
        if not self.done.is_set():
            self.close_code, self.close_reason = code, reason
            self.done.set()

    async def pump(self, upstream: ClientConnection, *, remote: bool) -> None:
        """One upstream's messages to the client; its end ends the client's connection."""
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                await self.to_client(message if isinstance(message, str) else message.decode())
        if remote and upstream is not self.remote:
            return  # closed by us when the user joined elsewhere
        code = upstream.close_code or 1006
        if remote and code in (1006, 1011, 1012, 1001):
            self.finish(_CLOSE_SERVICE_RESTART, "the node holding the call went away; connect and join again")
        else:
            self.finish(code if code != 1006 else 1011, upstream.close_reason or "")

    async def from_client(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await self.websocket.receive_text()
                try:
                    upstream = await self._upstream_for(text)
                except CallRefused as refusal:
                    refused = protocol.error(_id_of(text), refusal.code, refusal.message)
                    await self.to_client(orjson.dumps(refused).decode())
                    continue
                with contextlib.suppress(ConnectionClosed):
                    await upstream.send(text)
        self.finish(1000, "")

    async def _upstream_for(self, text: str) -> ClientConnection:
        room_id = _routed_room(text) if self.router is not None else None
        if room_id is None or self.router is None:
            return self.remote or self.local
        if not self.joins.take():
            raise CallRefused(Refusal.RATE_LIMITED, "Too many joins on this connection; wait a moment and retry.")
        target = await self.router.route(room_id)
        SIGNALING_RELAYS.labels("this node" if target is None else "another node").inc()
        if target is None:
            await self._drop_remote()
            return self.local
        if self.remote is not None and self.remote_node == target.node:
            return self.remote
        await self._drop_remote()
        self.remote = await self._open_remote(target)
        self.remote_node = target.node
        self._pumps.append(asyncio.create_task(self.pump(self.remote, remote=True)))
        return self.remote

    async def _open_remote(self, target: Upstream) -> ClientConnection:
        url = target.endpoint.replace("http", "ws", 1).rstrip("/") + "/calling/v1"
        query = self.websocket.url.query
        headers = _forwarded(self.websocket)
        headers[RELAYED_HEADER] = "1"
        try:
            remote = await connect(
                url + (f"?{query}" if query else ""),
                additional_headers=headers,
                max_size=_MAX_FRAME_BYTES,
                ssl=self.tls if url.startswith("wss:") else None,
                open_timeout=5,
            )
            hello = orjson.loads(await asyncio.wait_for(remote.recv(), 5))
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            message = f"Node {target.node} did not answer ({exc}); try again."
            raise CallRefused(Refusal.ROOM_ELSEWHERE, message) from None
        if hello.get("type") == "error":
            await remote.close()
            raise CallRefused(hello.get("code", Refusal.ROOM_ELSEWHERE), hello.get("message", ""))
        return remote

    async def _drop_remote(self) -> None:
        remote, self.remote, self.remote_node = self.remote, None, None
        if remote is not None:
            await remote.close()

    async def close(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        await self._drop_remote()
        await self.local.close()


def _routed_room(text: str) -> str | None:
    """The room of a ``join`` (the one message that picks a node); None for every other message."""
    if '"join"' not in text:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(message, dict) and message.get("type") in _ROUTED_TYPES:
        room_id = message.get("roomId")
        return room_id if isinstance(room_id, str) and len(room_id) <= 64 else None
    return None


def _id_of(text: str) -> Any:
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        return orjson.loads(text).get("id")
    return None


def _forwarded(websocket: WebSocket) -> dict[str, str]:
    return {name: websocket.headers[name] for name in _FORWARDED_HEADERS if name in websocket.headers}


async def signaling_proxy(websocket: WebSocket) -> None:
    state = websocket.app.state
    path = state.services.settings.signaling_socket
    query = f"?{websocket.url.query}" if websocket.url.query else ""
    try:
        local = await unix_connect(
            str(path),
            f"ws://vrooms/calling/v1{query}",
            additional_headers=_forwarded(websocket),
            max_size=_MAX_FRAME_BYTES,
        )
    except (OSError, TimeoutError):
        await websocket.accept()
        await websocket.send_json(protocol.error(None, Refusal.CALLS_UNAVAILABLE, "The call host is not running."))
        await websocket.close(_CLOSE_TRY_AGAIN_LATER)
        return
    await websocket.accept()
    router: JoinRouter | None = None if RELAYED_HEADER in websocket.headers else state.join_router
    relay = _Relay(websocket, local, router, state.node_tls)
    tasks = [
        asyncio.create_task(relay.from_client()),
        asyncio.create_task(relay.pump(local, remote=False)),
    ]
    try:
        await relay.done.wait()
    finally:
        for task in tasks:
            task.cancel()
        await relay.close()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the client may have gone first
            await websocket.close(relay.close_code, relay.close_reason)
