"""The event dispatcher: a process of its own that fans events out and delivers them.

Loop: fan new outbox events out to matching subscriptions (one transaction moves the
cursor and creates the delivery rows, so a crash repeats nothing and loses nothing),
then start a sender for every (subscription, order key) that has due deliveries and
none in flight. A sender posts its events in order, batching up to the subscription's
``maxEventsPerBatch``, and stops at the first failure: later events of that call or
room wait for the retry, so order holds per key while other keys go on. Outcomes are
written in one transaction per loop. A slow endpoint holds only its own senders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass

import httpx

from vrooms.api.times import now_micros
from vrooms.config import Settings
from vrooms.events import repository, webhooks
from vrooms.events.formats import default_topic
from vrooms.events.repository import DEAD, DELIVERED, Due, Subscription
from vrooms.events.service import RetryPolicy
from vrooms.store.database import Database

log = logging.getLogger("vrooms.events")

_FAN_OUT_BATCH = 5000
_FETCH_LIMIT = 4000


@dataclass(frozen=True)
class Outcome:
    subscription_id: str
    event_seq: int
    status: str
    attempts: int
    next_attempt_at: int
    error: str | None


class Dispatcher:
    def __init__(self, database: Database, settings: Settings, topic: str) -> None:
        self.database = database
        self.settings = settings
        self.topic = topic
        self.policy = RetryPolicy(
            tuple(settings.event_retry_delays_seconds), settings.event_max_attempts, settings.event_ttl_seconds
        )
        self._in_flight: set[tuple[str, str]] = set()
        self._finished: list[tuple[tuple[str, str], list[Outcome]]] = []
        self._slots = asyncio.Semaphore(settings.event_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.settings.event_concurrency, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=self.settings.event_delivery_timeout_seconds, limits=limits) as client:
            while True:
                try:
                    busy = await self.step(client)
                except Exception:
                    log.exception("event dispatch failed; retrying")
                    busy = False
                if not busy:
                    await asyncio.sleep(self.settings.event_poll_interval_seconds)

    async def step(self, client: httpx.AsyncClient) -> bool:
        """One loop: record finished senders, fan out, start senders. True if there was work."""
        await self._record_outcomes()
        now = now_micros()
        async with self.database.write() as conn:
            fanned = await repository.fan_out(conn, now, _FAN_OUT_BATCH)
        async with self.database.read() as conn:
            due = await repository.due_deliveries(conn, now, _FETCH_LIMIT)
            subscriptions = {s.id: s for s in await repository.list_subscriptions(conn)} if due else {}
        groups: dict[tuple[str, str], list[Due]] = defaultdict(list)
        for item in due:
            key = (item.subscription_id, item.event.order_key)
            if key not in self._in_flight:
                groups[key].append(item)
        for key, items in groups.items():
            subscription = subscriptions.get(key[0])
            if subscription is not None:
                self._in_flight.add(key)
                task = asyncio.create_task(self._send(client, key, subscription, items))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return fanned > 0 or bool(groups)

    async def _send(
        self, client: httpx.AsyncClient, key: tuple[str, str], subscription: Subscription, items: list[Due]
    ) -> None:
        outcomes: list[Outcome] = []
        try:
            async with self._slots:
                size = subscription.max_events_per_batch
                for start in range(0, len(items), size):
                    batch = items[start : start + size]
                    attempt = max(item.attempts for item in batch) + 1
                    status = await webhooks.deliver(client, subscription, [i.event for i in batch], self.topic, attempt)
                    now = now_micros()
                    if status is not None and 200 <= status < 300:
                        outcomes += [
                            Outcome(i.subscription_id, i.event.seq, DELIVERED, attempt, now, None) for i in batch
                        ]
                        continue
                    error = f"HTTP {status}" if status is not None else "no response (refused, reset or timed out)"
                    retry = False
                    for item in batch:
                        state, next_at = self.policy.after_failure(attempt, status, item.event.time, now)
                        outcomes.append(Outcome(item.subscription_id, item.event.seq, state, attempt, next_at, error))
                        retry = retry or state != DEAD
                    if retry:
                        break  # later events of this key wait: order per call or room
        finally:
            self._finished.append((key, outcomes))

    async def _record_outcomes(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        now = now_micros()
        async with self.database.write() as conn:
            for _, outcomes in finished:
                for o in outcomes:
                    await repository.record_outcome(
                        conn,
                        o.subscription_id,
                        o.event_seq,
                        status=o.status,
                        attempts=o.attempts,
                        next_attempt_at=o.next_attempt_at,
                        error=o.error,
                        now=now,
                    )
        for key, _ in finished:
            self._in_flight.discard(key)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._record_outcomes()


async def run(settings: Settings) -> None:
    database = Database(settings.effective_database_url)
    dispatcher = Dispatcher(database, settings, default_topic(settings))
    try:
        await dispatcher.run()
    finally:
        await dispatcher.close()
        await database.dispose()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
