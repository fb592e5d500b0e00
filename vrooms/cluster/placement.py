"""Which node holds a room's call: a lease per room in a bucket, written only by compare-and-set.

A lease is created when a room's call is first placed (``create`` succeeds for one writer
only) and renewed by its owner; it is taken over (``update`` with the revision read) only
once its owner's registry entry has expired. So two live nodes never both hold a room's
call: whoever loses a create or an update reads again and follows the winner. A lease its
owner stops renewing expires after ``ROOM_LEASE_TTL_SECONDS`` (a node that was cut off from
NATS finds, on renewal, that it was taken, and ends its copy of the call).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.registry import NodeEntry, NodeRegistry

log = logging.getLogger("vrooms.cluster")

ROOM_LEASE_TTL_SECONDS = 10.0
RENEW_INTERVAL_SECONDS = 1.0
# Compare-and-set rounds before giving up (each loser reads the winner and stops at once).
_ROUNDS = 8
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

PlacementPolicy = Callable[[Sequence[NodeEntry]], NodeEntry | None]


def least_loaded(nodes: Sequence[NodeEntry]) -> NodeEntry | None:
    """The placement policy: the healthy, not draining node with the least load (ties by name)."""
    return min((node for node in nodes if node.accepts_calls), key=lambda node: (node.load, node.name), default=None)


class NoNodeAvailable(Exception):
    """No node can take the call now (none healthy, or the bus is unreachable)."""


@dataclass(frozen=True)
class Lease:
    room_id: str
    node: str
    advertise: str
    revision: int


class RoomPlacement:
    def __init__(self, bus: ClusterBus, registry: NodeRegistry, policy: PlacementPolicy = least_loaded) -> None:
        self.bus = bus
        self.registry = registry
        self.policy = policy

    async def _bucket(self) -> KeyValue:
        return await self.bus.bucket("rooms", ROOM_LEASE_TTL_SECONDS)

    async def lease(self, room_id: str) -> Lease | None:
        if not _KEY.match(room_id):
            return None
        try:
            entry = await (await self._bucket()).get(room_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        value = orjson.loads(entry.value)
        return Lease(room_id, value["node"], value["advertise"], entry.revision)

    async def _write(self, room_id: str, node: NodeEntry, over: Lease | None) -> Lease | None:
        """Create the lease (``over`` None) or take it over; None if another writer won."""
        bucket = await self._bucket()
        value = orjson.dumps({"node": node.name, "advertise": node.advertise})
        try:
            if over is None:
                revision = await bucket.create(room_id, value)
            else:
                revision = await bucket.update(room_id, value, last=over.revision)
        except KeyWrongLastSequenceError:
            return None
        return Lease(room_id, node.name, node.advertise, revision)

    async def place(self, room_id: str) -> Lease:
        """Where the room's call is, or is now to be: the live owner's lease, else a new one."""
        if not _KEY.match(room_id):
            raise NoNodeAvailable(f"{room_id!r} cannot be placed")
        for _ in range(_ROUNDS):
            lease = await self.lease(room_id)
            if lease is not None and await self.registry.get(lease.node) is not None:
                return lease
            chosen = self.policy(await self.registry.nodes())
            if chosen is None:
                raise NoNodeAvailable("no node is healthy and accepting calls")
            written = await self._write(room_id, chosen, lease)
            if written is not None:
                _taken(lease, written)
                return written
        raise NoNodeAvailable("the room's placement kept changing; try again")

    async def claim(self, room_id: str, me: NodeEntry) -> Lease:
        """The lease for this node, which is about to start the room's call; else the owner's lease."""
        for _ in range(_ROUNDS):
            lease = await self.lease(room_id)
            if lease is not None and (lease.node == me.name or await self.registry.get(lease.node) is not None):
                return lease
            written = await self._write(room_id, me, lease)
            if written is not None:
                _taken(lease, written)
                return written
        raise NoNodeAvailable("the room's placement kept changing; try again")

    async def renew(self, lease: Lease, me: NodeEntry) -> Lease | None:
        """The lease rewritten (TTL restarted); None if another node holds it now.

        A lease that expired while this node was cut off from NATS (or NATS restarted) is
        created again, unless another node took the room meanwhile.
        """
        renewed = await self._write(lease.room_id, me, lease)
        if renewed is not None:
            return renewed
        current = await self.lease(lease.room_id)
        if current is None:
            return await self._write(lease.room_id, me, None)
        return current if current.node == me.name else None

    async def release(self, lease: Lease) -> None:
        """The call ended (or moved away): the room may be placed anew at once."""
        with contextlib.suppress(KeyWrongLastSequenceError):  # renewed or taken since: nothing of ours
            await (await self._bucket()).delete(lease.room_id, last=lease.revision)

    async def all(self) -> list[Lease]:
        found = [await self.lease(room_id) for room_id in await self.bus.keys("rooms", ROOM_LEASE_TTL_SECONDS)]
        return [lease for lease in found if lease is not None]


def _taken(old: Lease | None, new: Lease) -> None:
    """Say when a room changes node: a takeover is a failover (or, if the old node lives, a bug to see)."""
    if old is None:
        log.info("room %s placed on node %s", new.room_id, new.node)
    else:
        log.warning("room %s taken over by node %s: node %s's entry is gone", new.room_id, new.node, old.node)
