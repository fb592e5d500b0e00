"""Which subscriptions this dispatcher delivers, when the dispatchers of several nodes share the
outbox (PostgreSQL).

Each subscription is delivered by one dispatcher at a time: the one whose database session holds
its advisory lock. A dispatcher takes locks up to its fair share (the subscriptions over the
dispatchers present, counted by a lock they all hold shared) and gives back those above it that
have nothing in flight. A dispatcher that dies loses its session, and with it its locks: the
others take them at their next round. So every delivery of a subscription is made by one
dispatcher, in event order, and a subscription changes hands only between deliveries. On SQLite
(one machine) there is one dispatcher, which delivers everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from vrooms.store.database import SessionLocks

_PRESENT = "event-dispatchers"


def _lock(subscription_id: str) -> str:
    return f"event-subscription:{subscription_id}"


class Shares:
    def __init__(self, locks: SessionLocks | None = None) -> None:
        self.locks = locks
        self.owned: set[str] = set()

    async def join(self) -> None:
        """Be counted among the dispatchers present (for as long as the session lasts)."""
        if self.locks is not None:
            await self.locks.share(_PRESENT)

    def owns(self, subscription_id: str) -> bool:
        return self.locks is None or subscription_id in self.owned

    async def rebalance(self, subscriptions: list[str], busy: Callable[[str], bool]) -> set[str]:
        """Take up to the fair share, give back idle ones above it; returns those newly taken."""
        if self.locks is None:
            return set()
        for gone in self.owned - set(subscriptions):  # deleted meanwhile
            await self._give_back(gone)
        present = max(1, await self.locks.sharers(_PRESENT))
        target = math.ceil(len(subscriptions) / present)
        taken: set[str] = set()
        for subscription_id in sorted(subscriptions):
            if len(self.owned) >= target:
                break
            if subscription_id not in self.owned and await self.locks.try_lock(_lock(subscription_id)):
                self.owned.add(subscription_id)
                taken.add(subscription_id)
        for subscription_id in sorted(self.owned, reverse=True):
            if len(self.owned) <= target:
                break
            if not busy(subscription_id):
                await self._give_back(subscription_id)
        return taken

    async def _give_back(self, subscription_id: str) -> None:
        assert self.locks is not None
        self.owned.discard(subscription_id)
        await self.locks.unlock(_lock(subscription_id))
