"""A call host as a node of a cluster: its registry entry, its room leases, and the sweep of calls
that lost nodes left behind.

Every ``PUBLISH_INTERVAL_SECONDS`` the agent writes the node's entry (health and load, from the
call host) and renews the lease of every room whose call it holds. A lease it finds taken
(this node was cut off long enough for another to take the room) hands that call over: its
participants join again, on the node that holds the room now. While NATS is away, calls go
on; leases and the entry are written again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import nats.errors

from vrooms.calls.models import CallRefused, Refusal
from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.placement import Lease, NoNodeAvailable, RoomPlacement
from vrooms.cluster.registry import PUBLISH_INTERVAL_SECONDS, NodeEntry, NodeRegistry
from vrooms.metrics.catalog import PLACEMENTS

log = logging.getLogger("vrooms.cluster")

# How often (in rounds) the calls of lost nodes that nobody adopted are looked for: a room's
# lease outlives its lost owner by up to its TTL, and only then is its call an orphan.
_SWEEP_EVERY_ROUNDS = 10

LoadProbe = Callable[[], NodeEntry]


def cpu_load() -> float:
    """The one-minute load average per core (what placement weighs besides streams)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


class NodeAgent:
    """Implements ``calls.placement.CallPlacement`` for a node of a cluster."""

    def __init__(self, bus: ClusterBus, probe: LoadProbe) -> None:
        self.bus = bus
        self.registry = NodeRegistry(bus)
        self.placement = RoomPlacement(bus, self.registry)
        self.probe = probe
        self.draining = False
        self.held: dict[str, Lease] = {}
        # The endpoints of the live nodes (clients get them in their hello, to come back through).
        self.endpoints: list[str] = []
        # Told when the endpoints change (the call host tells its clients).
        self.on_endpoints: Callable[[list[str]], None] = lambda _endpoints: None
        self.alive: list[str] = []
        # The other nodes' SIP hosts: their bridged dial-ins are trusted here (read from sippy's thread).
        self.sip_hosts: frozenset[str] = frozenset()
        self._alive_at_last_sweep: set[str] = set()
        # Told when a lease turns out to be another node's: the call host hands that call over.
        self.on_lost: Callable[[str], Awaitable[None]] = _nothing
        # Told the live nodes and the placed rooms, to end the calls lost nodes left and nobody adopted.
        self.sweep: Callable[[set[str], set[str]], Awaitable[None]] = _nothing_for

    def entry(self) -> NodeEntry:
        return replace(self.probe(), draining=self.draining)

    async def claim(self, room_id: str) -> None:
        try:
            lease = await self.placement.claim(room_id, self.entry())
        except (NoNodeAvailable, nats.errors.Error) as exc:
            PLACEMENTS.labels("unavailable").inc()
            raise CallRefused(Refusal.ROOM_ELSEWHERE, f"The room cannot be placed now ({exc}); try again.") from None
        if lease.node != self.bus.node_name:
            PLACEMENTS.labels("elsewhere").inc()
            raise CallRefused(Refusal.ROOM_ELSEWHERE, f"Node {lease.node} holds this room's call; join through it.")
        PLACEMENTS.labels("held").inc()
        self.held[room_id] = lease

    async def release(self, room_id: str) -> None:
        lease = self.held.pop(room_id, None)
        if lease is None:
            return
        try:
            await self.placement.release(lease)
        except nats.errors.Error:
            log.warning("could not release room %s's lease (it expires by itself)", room_id)

    async def run(self) -> None:
        """Publish the entry and renew the leases, every second, for as long as the node runs.

        Two loops: the entry is what keeps this node's rooms from being taken over, so a slow
        round of renewals and sweeps (a loaded database, many rooms) never delays it.
        """
        await asyncio.gather(self._every_round(self._publish), self._every_round(self._round))

    async def _every_round(self, step: Callable[[int], Awaitable[None]]) -> None:
        rounds = 0
        while True:
            started = time.monotonic()
            try:
                await step(rounds)
            except (nats.errors.Error, OSError) as exc:
                self.bus.forget_buckets()
                log.warning("the cluster bus is unreachable (%s); calls go on, placement waits", exc)
            except Exception:  # a bug must cost one round, not the node's place in the cluster
                log.exception("a round of the node agent failed; the next one runs as usual")
            took = time.monotonic() - started
            if took > 2 * PUBLISH_INTERVAL_SECONDS:  # the entry's TTL is 3 rounds: say when it came close
                log.warning("a round of the node agent took %.1f s (%s)", took, step.__name__)
            rounds += 1
            await asyncio.sleep(max(0.0, PUBLISH_INTERVAL_SECONDS - took))

    async def _publish(self, _round: int) -> None:
        await self.registry.publish(self.entry())

    async def _round(self, rounds: int) -> None:
        me = self.entry()
        for room_id, lease in list(self.held.items()):
            renewed = await self.placement.renew(lease, me)
            if self.held.get(room_id) is not lease:
                continue  # released (or claimed again) while this renewal ran
            if renewed is None:
                del self.held[room_id]
                log.warning("room %s is held by another node now; handing its call over", room_id)
                await self.on_lost(room_id)
            else:
                self.held[room_id] = renewed
        await self.refresh()
        if rounds % _SWEEP_EVERY_ROUNDS == 0:
            await self._sweep()

    async def refresh(self) -> None:
        """The live nodes, and the endpoints of those that take calls (clients learn them)."""
        nodes = await self.registry.nodes()
        self.alive = [node.name for node in nodes]
        me = self.bus.node_name
        self.sip_hosts = frozenset(node.sip.rsplit(":", 1)[0] for node in nodes if node.sip and node.name != me)
        endpoints = [node.advertise for node in nodes if node.accepts_calls]
        if endpoints != self.endpoints:
            self.endpoints = endpoints
            self.on_endpoints(endpoints)

    async def _sweep(self) -> None:
        """A node counts as lost once it was missing at two sweeps in a row: one stalled moment
        (its entry late by a second) must not end the records of calls it still runs."""
        alive = set(self.alive)
        spared, self._alive_at_last_sweep = alive | self._alive_at_last_sweep, alive
        await self.sweep(spared, {lease.room_id for lease in await self.placement.all()})

    async def leave(self) -> None:
        """A clean exit: the entry goes at once, so placement skips this node without waiting."""
        with contextlib.suppress(nats.errors.Error):
            await self.registry.withdraw(self.bus.node_name)


async def _nothing(_room_id: str) -> None:
    return None


async def _nothing_for(_alive: set[str], _placed: set[str]) -> None:
    return None
