"""Invitations across the nodes of a cluster (``calls.invites.RemoteDevices`` over NATS).

``ring``: published to every node with a reply inbox; each other node rings the user's idle
devices connected to it and answers how many rang (0 too), so the holder waits for the live
nodes' answers, at most ``_RING_WAIT_SECONDS``. ``cancel``: published, fire and forget. A
``decline`` made where the call is not held is a request that only the holder answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import nats.errors
import orjson

from vrooms.calls import moderation, protocol
from vrooms.calls.service import CallService
from vrooms.cluster.bus import ClusterBus

log = logging.getLogger("vrooms.cluster")

_RING_WAIT_SECONDS = 0.5
_DECLINE_WAIT_SECONDS = 1.0


class BusInvites:
    def __init__(self, bus: ClusterBus, calls: CallService, nodes: Callable[[], list[str]]) -> None:
        self.bus = bus
        self.calls = calls
        self.nodes = nodes  # the live nodes (this one included)
        self._tasks: set[asyncio.Task[None]] = set()

    async def ring(self, user_id: str, invitation: dict[str, Any]) -> int:
        others = len([node for node in self.nodes() if node != self.bus.node_name])
        if not others:
            return 0
        answers: asyncio.Queue[int] = asyncio.Queue()

        async def answered(message: Any) -> None:
            answers.put_nowait(int(orjson.loads(message.data).get("rang", 0)))

        inbox = self.bus.nc.new_inbox()
        subscription = await self.bus.nc.subscribe(inbox, cb=answered)
        rang = 0
        try:
            payload = {"from": self.bus.node_name, "userId": user_id, "invitation": invitation}
            await self.bus.nc.publish(self.bus.subject("invites", "ring"), orjson.dumps(payload), reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _RING_WAIT_SECONDS
            for _ in range(others):
                rang += await asyncio.wait_for(answers.get(), max(0.0, deadline - loop.time()))
        except (TimeoutError, nats.errors.Error):
            pass  # a node that did not answer in time rang nothing we can count
        finally:
            await subscription.unsubscribe()
        return rang

    def cancel(self, user_id: str, call_id: str) -> None:
        payload = orjson.dumps({"from": self.bus.node_name, "userId": user_id, "callId": call_id})
        task = asyncio.get_running_loop().create_task(self._publish(self.bus.subject("invites", "cancel"), payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, subject: str, payload: bytes) -> None:
        try:
            await self.bus.publish(subject, payload)
        except nats.errors.Error as exc:
            log.warning("could not tell other nodes to stop ringing (%s)", exc)

    async def decline(self, user_id: str, call_id: str) -> bool:
        payload = orjson.dumps({"userId": user_id, "callId": call_id})
        try:
            await self.bus.nc.request(self.bus.subject("invites", "decline"), payload, timeout=_DECLINE_WAIT_SECONDS)
        except nats.errors.Error:  # no node holds that call with that invitation (or none answered)
            return False
        return True

    async def listen(self) -> None:
        async def ring(message: Any) -> None:
            data = orjson.loads(message.data)
            if data.get("from") == self.bus.node_name:
                return
            user_id = str(data.get("userId"))
            idle = [p for p in self.calls.peers.get(user_id, set()) if p not in self.calls.participant_of]
            for peer in idle:
                peer.send(data["invitation"])
            await message.respond(orjson.dumps({"rang": len(idle)}))

        async def cancel(message: Any) -> None:
            data = orjson.loads(message.data)
            if data.get("from") != self.bus.node_name:
                for peer in self.calls.peers.get(str(data.get("userId")), set()):
                    peer.send(protocol.invite_cancelled(str(data.get("callId"))))

        async def decline(message: Any) -> None:
            data = orjson.loads(message.data)
            if moderation.decline_here(self.calls, str(data.get("userId")), str(data.get("callId"))):
                await message.respond(b"{}")  # only the holder answers

        await self.bus.subscribe(self.bus.subject("invites", "ring"), ring)
        await self.bus.subscribe(self.bus.subject("invites", "cancel"), cancel)
        await self.bus.subscribe(self.bus.subject("invites", "decline"), decline)
