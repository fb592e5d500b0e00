"""The NATS connection a process of a node holds, scoped to its cluster's name.

Subjects are ``vrooms.<cluster>.<...>`` and buckets ``vrooms-<cluster>-<kind>``, so several
clusters (tests, staging) share one NATS server without meeting. Buckets are in memory: what
they hold (leases, node entries) is re-asserted by its owner every second, so a restarted NATS
is whole again within a second of being back, and nothing there needs a disk.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

log = logging.getLogger("vrooms.cluster")

_CONNECT_TIMEOUT_SECONDS = 5.0


def shown(url: str) -> str:
    """The NATS URL as logs and messages may show it: without a user or password in it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class ClusterBus:
    """One NATS connection: reconnects forever (media never waits on it), buckets made on demand."""

    def __init__(self, url: str, cluster_name: str, node_name: str) -> None:
        self.url = url
        self.cluster_name = cluster_name
        self.node_name = node_name
        self._nc: Client | None = None
        self._buckets: dict[str, KeyValue] = {}
        self._closing = False
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []

    async def connect(self) -> None:
        async def reconnected() -> None:
            log.warning("reconnected to NATS at %s", shown(self.url))
            self._buckets.clear()  # a restarted NATS lost the in-memory buckets: make them again
            for callback in self.on_reconnect:
                await callback()

        async def disconnected() -> None:
            if not self._closing:
                log.warning("lost NATS at %s; reconnecting (calls go on meanwhile)", shown(self.url))

        async def error(exc: Exception) -> None:
            log.debug("NATS: %s", exc)

        self._nc = await nats.connect(
            self.url,
            name=f"vrooms {self.cluster_name}/{self.node_name}",
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            reconnected_cb=reconnected,
            disconnected_cb=disconnected,
            error_cb=error,
        )

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the cluster bus is not connected")
        return self._nc

    def subject(self, *parts: str) -> str:
        return ".".join(("vrooms", self.cluster_name, *parts))

    async def bucket(self, kind: str, ttl_seconds: float) -> KeyValue:
        """The cluster's bucket of that kind, made if missing; entries expire ``ttl_seconds`` after their last write."""
        bucket = self._buckets.get(kind)
        if bucket is None:
            config = KeyValueConfig(
                bucket=f"vrooms-{self.cluster_name}-{kind}", ttl=ttl_seconds, history=1, storage=StorageType.MEMORY
            )
            bucket = await self.nc.jetstream().create_key_value(config)
            self._buckets[kind] = bucket
        return bucket

    async def keys(self, kind: str, ttl_seconds: float) -> list[str]:
        """The keys in the cluster's bucket of that kind (none: an empty list, not an error)."""
        try:
            return list(await (await self.bucket(kind, ttl_seconds)).keys())
        except NoKeysError:
            return []

    def forget_buckets(self) -> None:
        """After an error that may mean a bucket is gone (a restarted NATS): bind again on next use."""
        self._buckets.clear()

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.nc.publish(subject, payload)

    async def subscribe(self, subject: str, handle: Callable[[Any], Awaitable[None]]) -> None:
        await self.nc.subscribe(subject, cb=handle)

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
