"""Event rules: subscriptions, matching and the retry policy (no HTTP, no SQL beyond the repository).

Retries follow Event Grid: exponential delays (10 s, 30 s, 1 min, ...), at most 30
attempts and 24 hours, then the dead-letter store. A 400 or 413 from the endpoint is
not retried (Event Grid dead-letters those at once: resending cannot help).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from vrooms.api.times import now_micros
from vrooms.errors import ApiError, bad_argument, not_found
from vrooms.events import repository
from vrooms.events.models import NewSubscription, Subscription
from vrooms.events.repository import DEAD, PENDING
from vrooms.store.database import Connection, Database

_NOT_RETRIED = frozenset({400, 413})


@dataclass(frozen=True)
class RetryPolicy:
    delays_seconds: tuple[float, ...]
    max_attempts: int
    ttl_seconds: float

    def after_failure(self, attempts: int, status: int | None, first_time: int, now: int) -> tuple[str, int]:
        """(new status, next attempt time) after ``attempts`` failed deliveries."""
        if status in _NOT_RETRIED or attempts >= self.max_attempts:
            return DEAD, now
        delay = self.delays_seconds[min(attempts, len(self.delays_seconds)) - 1]
        # +-10% so that the retries of a burst do not all land at once (Event Grid randomizes too).
        next_at = now + int(delay * random.uniform(0.9, 1.1) * 1_000_000)
        if next_at - first_time > self.ttl_seconds * 1_000_000:
            return DEAD, now
        return PENDING, next_at


# Proves the endpoint wants our events before anything is stored (Event Grid's handshakes).
Handshake = Callable[[NewSubscription], Awaitable[None]]


def _taken(name: str) -> ApiError:
    return bad_argument(f"An event subscription named '{name}' exists; delete it first.", "name")


def _missing(name: str) -> ApiError:
    return not_found(f"Event subscription '{name}' was not found.", "name")


class EventsService:
    def __init__(self, handshake: Handshake) -> None:
        self._handshake = handshake

    async def subscribe(self, database: Database, new: NewSubscription) -> Subscription:
        """Store a subscription whose endpoint proved it wants our events; it gets events from now on.

        The handshake may take seconds, so it runs inside no transaction (a read holds a
        pooled connection, a write the write lock); the name is checked again when storing.
        """
        async with database.read() as conn:
            await self._check_name_free(conn, new.name)
        await self._handshake(new)
        async with database.write() as conn:
            await self._check_name_free(conn, new.name)
            subscription = Subscription(
                id=str(uuid.uuid4()),
                start_seq=await repository.last_event_seq(conn),
                created_at=now_micros(),
                **asdict(new),
            )
            await repository.insert_subscription(conn, subscription)
        return subscription

    @staticmethod
    async def _check_name_free(conn: Connection, name: str) -> None:
        if await repository.subscription_named(conn, name) is not None:
            raise _taken(name)

    async def get(self, conn: Connection, name: str) -> Subscription:
        subscription = await repository.subscription_named(conn, name)
        if subscription is None:
            raise _missing(name)
        return subscription

    async def delete(self, conn: Connection, name: str) -> None:
        if not await repository.delete_subscription(conn, name):
            raise _missing(name)

    async def replay(self, conn: Connection, name: str | None) -> int:
        subscription_id = (await self.get(conn, name)).id if name else None
        return await repository.replay_dead_letters(conn, subscription_id, now_micros())
