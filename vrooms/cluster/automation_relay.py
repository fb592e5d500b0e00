"""Call Automation on any node: a REST worker sends each request to the node holding its call.

The call a request is about is found from its ids (``automation/ids.py``: connection and
recording ids name their room) or its body's call locator (a room id, or a server call id
looked up in the call records); the room's lease names the node. What belongs to no room names
its node in its id (a ringing caller's ``incomingCallContext``, an answered caller's lobby
connection: they live where the caller's SIP arrived). Requests for this node's calls go to the
local call host as on a single node; the others go over NATS
(request/reply) to ``vrooms.<cluster>.node.<name>.automation``, the holder's call host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import orjson

from vrooms.automation.relay import AutomationRelay
from vrooms.callbacks import ids
from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.placement import NoNodeAvailable, RoomPlacement
from vrooms.errors import ApiError

_TIMEOUT_SECONDS = 60.0  # as the local relay: a phone add may wait for its relay to come up
_UNAVAILABLE = "The node holding this call did not answer; try again."

Answer = tuple[int, Any, dict[str, str]]


def _locator(body: Any) -> tuple[str | None, str | None]:
    """(room id, server call id) of a body's ``callLocator``, as far as it says (validation is the host's)."""
    locator = body.get("callLocator") if isinstance(body, dict) else None
    if not isinstance(locator, dict):
        return None, None
    room, call = locator.get("roomId"), locator.get("serverCallId")
    return (room if isinstance(room, str) else None), (call if isinstance(call, str) else None)


class ClusterAutomationRelay:
    """The worker's ``automation`` service in a cluster (same ``run`` as ``AutomationRelay``)."""

    def __init__(
        self,
        local: AutomationRelay,
        bus: ClusterBus,
        placement: RoomPlacement,
        room_of_call: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self.local = local
        self.bus = bus
        self.placement = placement
        self.room_of_call = room_of_call

    async def _room(self, envelope: dict[str, Any]) -> tuple[str | None, bool]:
        """The room the request is about, and whether to place it if no node holds it (a connect)."""
        body = envelope.get("body")
        room = ids.room_in(envelope.get("connectionId")) or ids.room_in(envelope.get("recordingId"))
        if room is None and isinstance(body, dict):
            room = ids.room_in(body.get("callConnectionId"))
        if room is None:
            room, server_call = _locator(body)
            if room is None and server_call is not None:
                room = await self.room_of_call(server_call[:64])
        return room, envelope.get("op") == "connect"

    async def _node(self, envelope: dict[str, Any]) -> str | None:
        """The node that answers the request: the one its ids name, or the holder of its room."""
        body = envelope.get("body")
        named = [envelope.get("connectionId")]
        if isinstance(body, dict):
            named += [body.get("callConnectionId"), body.get("incomingCallContext")]
        node = next((found for found in map(ids.node_in, named) if found), None)
        if node is not None:
            return node
        room, place = await self._room(envelope)
        try:
            lease = await (self.placement.place(room) if place else self.placement.lease(room)) if room else None
        except (NoNodeAvailable, nats.errors.Error) as exc:
            raise ApiError(503, "CallsUnavailable", f"No node can take this call now ({exc}); try again.") from None
        return lease.node if lease is not None else None

    async def run(self, envelope: dict[str, Any]) -> Answer:
        node = await self._node(envelope)
        if node is None or node == self.bus.node_name:
            return await self.local.run(envelope)
        try:
            reply = await self.bus.nc.request(
                self.bus.subject("node", node, "automation"), orjson.dumps(envelope), timeout=_TIMEOUT_SECONDS
            )
            answer = orjson.loads(reply.data)
        except nats.errors.NoRespondersError:
            return await self.local.run(envelope)  # a node not (or no longer) there: this one says "not found"
        except (nats.errors.Error, orjson.JSONDecodeError):
            raise ApiError(503, "CallsUnavailable", _UNAVAILABLE) from None
        return int(answer["status"]), answer.get("body"), dict(answer.get("headers") or {})

    async def close(self) -> None:
        await self.local.close()
