"""The REST worker's side of placement: which node's call host a ``join`` goes to.

A join to a room nobody holds places it (``RoomPlacement.place``: the least loaded healthy
node, by compare-and-set, so concurrent joins through different nodes agree). Only rooms that
exist are placed: a client cannot fill the bucket with made-up room ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats.errors

from vrooms.calls.models import CallRefused, Refusal
from vrooms.calls.proxy import Upstream
from vrooms.cluster.placement import NoNodeAvailable, RoomPlacement


class ClusterJoinRouter:
    """``calls.proxy.JoinRouter`` for a node of a cluster."""

    def __init__(self, placement: RoomPlacement, node_name: str, room_exists: Callable[[str], Awaitable[bool]]) -> None:
        self.placement = placement
        self.node_name = node_name
        self.room_exists = room_exists

    async def route(self, room_id: str) -> Upstream | None:
        if not await self.room_exists(room_id):
            return None  # this node's call host gives the refusal (RoomNotFound)
        try:
            lease = await self.placement.place(room_id)
        except (NoNodeAvailable, nats.errors.Error) as exc:
            message = f"No node can take this room's call now ({exc}); try again."
            raise CallRefused(Refusal.ROOM_ELSEWHERE, message) from None
        return None if lease.node == self.node_name else Upstream(lease.node, lease.advertise)
