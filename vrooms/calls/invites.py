"""Invitations to users connected to other nodes of a cluster (none on a single node).

A call's invitations live with the call, on the node that holds it; the invitee's devices may be
connected to any node. ``RemoteDevices`` rings them there, stops them ringing, and takes a
decline made there back to the call (``cluster/invites.py`` over NATS).
"""

from __future__ import annotations

from typing import Any, Protocol


class RemoteDevices(Protocol):
    async def ring(self, user_id: str, invitation: dict[str, Any]) -> int:
        """Ring the user's idle devices on the other nodes; how many rang."""

    def cancel(self, user_id: str, call_id: str) -> None:
        """Stop them ringing (fire and forget)."""

    async def decline(self, user_id: str, call_id: str) -> bool:
        """Take a decline made on this node to the node holding the call; False if none holds it."""


class NoOtherNodes:
    async def ring(self, user_id: str, invitation: dict[str, Any]) -> int:
        return 0

    def cancel(self, user_id: str, call_id: str) -> None:
        return None

    async def decline(self, user_id: str, call_id: str) -> bool:
        return False
