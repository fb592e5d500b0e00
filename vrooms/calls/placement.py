"""Which node may hold a room's call: the seam between the call rules and a cluster.

A single node holds every room (``SingleNode``); in a cluster the node agent
(``cluster.agent``) holds a lease per room and refuses a room another live node holds.
"""

from __future__ import annotations

from typing import Protocol


class CallPlacement(Protocol):
    async def claim(self, room_id: str) -> None:
        """Before this node starts the room's call; raises ``CallRefused`` if another node holds it."""

    async def release(self, room_id: str) -> None:
        """The room's call ended here (or moved away): it may be placed anew."""


class SingleNode:
    """Every room is this node's."""

    async def claim(self, room_id: str) -> None:
        return None

    async def release(self, room_id: str) -> None:
        return None
