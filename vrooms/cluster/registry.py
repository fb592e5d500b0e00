"""The node registry: each node's entry (where it is reached, its health and load) in a bucket
whose entries expire ``NODE_TTL_SECONDS`` after their last write.

A node rewrites its entry every ``PUBLISH_INTERVAL_SECONDS``; one that stops (killed, hung,
cut off) drops out of the bucket, and so out of placement, by the server's clock, not by
comparing the clocks of the nodes. That expiry is what starts a failover.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from vrooms.cluster.bus import ClusterBus

NODE_TTL_SECONDS = 3.0
PUBLISH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class NodeEntry:
    name: str
    advertise: str
    calls: int = 0
    participants: int = 0
    phone_legs: int = 0
    # The one-minute load average per core.
    cpu: float = 0.0
    media: bool = False
    # rtpengine answers; None: this node has no SIP trunk.
    telephony: bool | None = None
    # host:port of its SIP listener (it has a trunk): dial-ins for its rooms are bridged there.
    sip: str | None = None
    draining: bool = False

    @property
    def accepts_calls(self) -> bool:
        return self.media and not self.draining

    @property
    def load(self) -> float:
        """What placement weighs: media streams mostly (a participant, a phone leg), then CPU."""
        return self.participants + self.phone_legs + 10 * self.cpu

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> NodeEntry:
        data = orjson.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class NodeRegistry:
    def __init__(self, bus: ClusterBus) -> None:
        self.bus = bus

    async def _bucket(self) -> KeyValue:
        return await self.bus.bucket("nodes", NODE_TTL_SECONDS)

    async def publish(self, entry: NodeEntry) -> None:
        await (await self._bucket()).put(entry.name, entry.to_json())

    async def withdraw(self, name: str) -> None:
        """A node that leaves cleanly takes its entry out at once (no wait for the TTL)."""
        await (await self._bucket()).delete(name)

    async def get(self, name: str) -> NodeEntry | None:
        """The node's entry if it is alive (wrote one within the TTL)."""
        try:
            entry = await (await self._bucket()).get(name)
        except KeyNotFoundError:
            return None
        return NodeEntry.from_json(entry.value) if entry.value else None

    async def nodes(self) -> list[NodeEntry]:
        found = [await self.get(name) for name in await self.bus.keys("nodes", NODE_TTL_SECONDS)]
        return sorted((entry for entry in found if entry is not None), key=lambda entry: entry.name)
