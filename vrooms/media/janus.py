"""A client for the Janus API over its WebSocket transport.

One WebSocket and one Janus session per call host; every participant's plugin handle
lives in that session. Requests are matched to replies by ``transaction``; events
without one are routed to the handle that sent them (``sender``). Reference: the
Janus API documentation, "JSON API" and "WebSockets" (janus-gateway ``docs/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from vrooms.media.config import JanusEndpoint
from vrooms.supervision import heartbeat, to_the_end

log = logging.getLogger("vrooms.media")

_REQUEST_TIMEOUT_SECONDS = 10.0

EventHandler = Callable[[dict[str, Any]], None]


class JanusError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusUnavailable(JanusError):
    """The connection to Janus is gone (Janus died or was never reachable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


@dataclass(frozen=True)
class PluginReply:
    data: dict[str, Any]
    jsep: dict[str, Any] | None


class JanusHandle:
    """One plugin handle: requests to the plugin and the events it sends back."""

    def __init__(self, connection: JanusConnection, handle_id: int, plugin: str, on_event: EventHandler) -> None:
        self.connection = connection
        self.id = handle_id
        self.plugin = plugin
        self.on_event = on_event

    async def request(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> PluginReply:
        """Send a plugin message; return its reply (synchronous ``success`` or asynchronous ``event``)."""
        message: dict[str, Any] = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await self.connection.call(message)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return PluginReply(data=data, jsep=reply.get("jsep"))

    async def detach(self) -> None:
        self.connection.forget(self.id)
        with contextlib.suppress(JanusError):
            await self.connection.call({"janus": "detach", "handle_id": self.id})


class JanusConnection:
    def __init__(self, endpoint: JanusEndpoint) -> None:
        self.endpoint = endpoint
        self.session_id = 0
        self._ws: ClientConnection | None = None
        self._transactions = (f"t{n}" for n in itertools.count(1))
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ack_replies: set[str] = set()
        self._handles: dict[int, JanusHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def open(self) -> None:
        self._ws = await connect(
            self.endpoint.url,
            subprotocols=[Subprotocol("janus-protocol")],
            max_size=None,
            ping_interval=None,
            open_timeout=5,
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._keepalive())]
        reply = await self.call({"janus": "create"}, session=False)
        self.session_id = int(reply["data"]["id"])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        self._fail_all("connection closed")

    async def attach(self, plugin: str, on_event: EventHandler) -> JanusHandle:
        """A new plugin handle. Cancelled while Janus makes it, it is still made: the request runs
        to its end and the handle it made is detached, so none is left in the session."""
        request = asyncio.ensure_future(self.call({"janus": "attach", "plugin": plugin}))
        try:
            reply = await to_the_end(request)
        except asyncio.CancelledError:
            if not request.cancelled() and request.exception() is None:
                made = JanusHandle(self, int(request.result()["data"]["id"]), plugin, on_event)
                await to_the_end(made.detach())
            raise
        handle = JanusHandle(self, int(reply["data"]["id"]), plugin, on_event)
        self._handles[handle.id] = handle
        return handle

    def forget(self, handle_id: int) -> None:
        self._handles.pop(handle_id, None)

    async def call(
        self, message: dict[str, Any], *, session: bool = True, ack_is_reply: bool = False
    ) -> dict[str, Any]:
        if self._ws is None or self.closed.is_set():
            raise JanusUnavailable("not connected to Janus")
        transaction = next(self._transactions)
        message["transaction"] = transaction
        if session:
            message["session_id"] = self.session_id
        if self.endpoint.api_secret:
            message["apisecret"] = self.endpoint.api_secret
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        if ack_is_reply:
            self._ack_replies.add(transaction)
        try:
            await self._ws.send(orjson.dumps(message).decode())
            reply = await asyncio.wait_for(future, _REQUEST_TIMEOUT_SECONDS)
        except ConnectionClosed as exc:
            raise JanusUnavailable("Janus closed the connection") from exc
        except TimeoutError as exc:
            raise JanusError(0, f"no reply to '{message['janus']}' within {_REQUEST_TIMEOUT_SECONDS} s") from exc
        finally:
            self._pending.pop(transaction, None)
            self._ack_replies.discard(transaction)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        return reply

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._dispatch(orjson.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            self._fail_all("Janus closed the connection")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        transaction = message.get("transaction", "")
        future = self._pending.get(transaction)
        # A plugin message is acknowledged first and answered by an event later;
        # keepalives are answered by the ack itself.
        if future is not None and not future.done() and (kind != "ack" or transaction in self._ack_replies):
            future.set_result(message)
            return
        if future is not None and kind == "ack":
            return
        handle = self._handles.get(int(message.get("sender", 0)))
        if handle is None:
            return
        try:
            handle.on_event(message)
        except Exception:
            log.exception("handling a Janus event failed: %s", message)

    async def _keepalive(self) -> None:
        """A keepalive every heartbeat (Janus drops sessions silent for 60 s) that also tells a hung
        Janus (SIGSTOP, a deadlock) from a busy one: two missed in a row and the connection counts
        as lost, so every waiting request fails at once and the keeper restarts Janus."""
        reason = await heartbeat(lambda: self.call({"janus": "keepalive"}, ack_is_reply=True))
        log.error("Janus stopped answering (%s)", reason)
        self._fail_all(f"Janus stopped answering ({reason})")
        if self._ws is not None:
            self._ws.transport.abort()

    def _fail_all(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(JanusUnavailable(reason))
        self._pending.clear()
