"""Telephony's view of the cluster (``pstn.bridge.SipPeers``): to which node a dial-in goes.

A caller reaches whichever node the carrier sends it to; the room's lease names the node that
holds the call, and that node's registry entry its SIP listener. A room nobody holds, or whose
holder is gone, is answered here (the call starts, or is adopted, here).
"""

from __future__ import annotations

import nats.errors

from vrooms.cluster.placement import RoomPlacement
from vrooms.cluster.registry import NodeRegistry
from vrooms.pstn.bridge import SipPeer


class ClusterSipPeers:
    def __init__(self, placement: RoomPlacement, registry: NodeRegistry, node_name: str) -> None:
        self.placement = placement
        self.registry = registry
        self.node_name = node_name

    async def holder(self, room_id: str) -> SipPeer | None:
        try:
            lease = await self.placement.lease(room_id)
            if lease is None or lease.node == self.node_name:
                return None
            entry = await self.registry.get(lease.node)
        except nats.errors.Error:
            return None  # the bus is away: answered here, like a single node
        if entry is None or not entry.sip:
            return None
        host, port = entry.sip.rsplit(":", 1)
        return SipPeer(entry.name, host, int(port))

    async def alive(self, node: str) -> bool:
        try:
            return await self.registry.get(node) is not None
        except nats.errors.Error:
            return True  # the bus is away, not necessarily the node: the call's media goes on
