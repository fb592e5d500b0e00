"""Change notices between the nodes of a cluster: a room's window, roster or existence changed, a
user's tokens were revoked. Published by whichever node's REST worker (or CLI) made the change,
received by every node's call host (each applies those of the calls it holds).

Core NATS over TCP: a notice is flushed to the server before the API answers, and reaches every
subscriber that is connected. A call host that was disconnected may have missed some, so it
reconciles every live call as soon as it is back (``ClusterBus.on_reconnect``), on top of the
periodic reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import nats.errors
import orjson

from vrooms.cluster.bus import ClusterBus

log = logging.getLogger("vrooms.cluster")

_FLUSH_TIMEOUT_SECONDS = 1


class BusNotices:
    """``rooms.commands.LiveCallsNotice`` and ``identity.commands.LiveCallsNotice`` over the bus."""

    def __init__(self, bus: ClusterBus) -> None:
        self.bus = bus

    async def room_changed(self, room_id: str) -> None:
        await self._send({"event": "roomChanged", "roomId": room_id})

    async def user_changed(self, user_id: str) -> None:
        await self._send({"event": "userChanged", "userId": user_id})

    async def _send(self, notice: dict[str, str]) -> None:
        # The API never fails because of the bus: a lost notice is caught by the reconcile.
        try:
            await self.bus.publish(self.bus.subject("changes"), orjson.dumps(notice))
            await self.bus.nc.flush(timeout=_FLUSH_TIMEOUT_SECONDS)
        except (nats.errors.Error, RuntimeError) as exc:
            log.warning("a change notice did not reach the bus (%s); live calls reconcile it", exc)


async def listen(bus: ClusterBus, handle: Callable[[dict[str, Any]], None]) -> None:
    async def received(message: Any) -> None:
        try:
            notice = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            log.warning("ignored a malformed change notice")
            return
        if isinstance(notice, dict):
            handle(notice)

    await bus.subscribe(bus.subject("changes"), received)
