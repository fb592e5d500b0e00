"""The event dispatcher: a process of its own that fans events out and delivers them.

Each loop fans new outbox events out to matching subscriptions (one transaction moves
the cursor and creates the delivery rows, so a crash repeats nothing and loses
nothing) and hands the new deliveries to *lanes*, one per (subscription, order key),
i.e. per subscriber and call or room. A lane's sender posts in event order, batching
up to the subscription's ``maxEventsPerBatch``; on a failure it keeps the event at its
head until the retry time, so later events of that call wait while other lanes go on.
Outcomes are written in one statement per loop. The database stays the record: at
start-up every pending delivery is loaded back, and deliveries put back by others
(dead-letter replays) are picked up within a second. A slow endpoint holds only its
own lanes (and at most ``VROOMS_EVENT_CONCURRENCY`` requests in flight overall).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vrooms import logs
from vrooms.api.times import now_micros
from vrooms.auth.callback_tokens import callback_signer
from vrooms.config import Settings
from vrooms.egress import EgressPolicies, EgressPolicy
from vrooms.events import repository, wakeup, webhooks
from vrooms.events.formats import default_topic
from vrooms.events.models import Subscription
from vrooms.events.repository import DEAD, DELIVERED, Pending
from vrooms.events.service import RetryPolicy
from vrooms.events.shares import Shares
from vrooms.metrics.catalog import DELIVERIES, OUTBOX_LAG
from vrooms.store.database import Database

log = logging.getLogger("vrooms.events")

_FAN_OUT_BATCH = 5000
_RESYNC_SECONDS = 0.5  # also how soon another node's fan-outs are seen
_PURGE_SECONDS = 60.0

LaneKey = tuple[str, str]  # (subscription id, order key)


@dataclass
class Lane:
    """One subscriber's deliveries for one call or room, in event order."""

    queue: list[Pending] = field(default_factory=list)
    running: bool = False

    def add(self, pending: Pending) -> None:
        bisect.insort(self.queue, pending, key=lambda p: p.event.seq)

    def ready(self, now: int) -> bool:
        return bool(self.queue) and not self.running and self.queue[0].next_attempt_at <= now


@dataclass(frozen=True)
class Clients:
    """One HTTP client per egress policy: webhooks (Event Grid subscriptions) and callbacks (apps')."""

    webhooks: aiohttp.ClientSession
    webhook_policy: EgressPolicy
    callbacks: aiohttp.ClientSession
    callback_policy: EgressPolicy

    def of(self, subscription: Subscription) -> tuple[aiohttp.ClientSession, EgressPolicy]:
        if subscription.is_callback:
            return self.callbacks, self.callback_policy
        return self.webhooks, self.webhook_policy


class Dispatcher:
    def __init__(self, database: Database, settings: Settings, topic: str) -> None:
        self.database = database
        self.settings = settings
        self.topic = topic
        self.policy = RetryPolicy(
            tuple(settings.event_retry_delays_seconds), settings.event_max_attempts, settings.event_ttl_seconds
        )
        self.signer = callback_signer(settings)
        self.lanes: dict[LaneKey, Lane] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._in_hand: set[tuple[str, int]] = set()
        self._outcomes: list[dict[str, Any]] = []
        self._slots = asyncio.Semaphore(settings.event_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced_at = 0
        self._purged_at = 0
        # The subscriptions this dispatcher delivers (all of them, unless several share the outbox).
        self.shares = Shares()

    def _take(self, pending: Pending) -> None:
        marker = (pending.subscription_id, pending.event.seq)
        if marker in self._in_hand or pending.subscription_id not in self.subscriptions:
            return
        if not self.shares.owns(pending.subscription_id):
            return
        self._in_hand.add(marker)
        self.lanes.setdefault((pending.subscription_id, pending.event.order_key), Lane()).add(pending)

    async def _resync(self) -> None:
        """Reload subscriptions; pick up pending deliveries changed by others since the last sync."""
        started = now_micros()
        async with self.database.read() as conn:
            self.subscriptions = {s.id: s for s in await repository.list_subscriptions(conn)}
        taken = await self.shares.rebalance(list(self.subscriptions), self._busy)
        async with self.database.read() as conn:
            since = self._synced_at - int(_RESYNC_SECONDS * 1_000_000)
            pending = await repository.pending_deliveries(conn, changed_since=max(0, since))
            if taken:  # everything still pending of the subscriptions taken over
                pending += await repository.pending_deliveries(conn, subscriptions=sorted(taken))
        self._synced_at = started
        for key in [key for key in self.lanes if key[0] not in self.subscriptions or not self.shares.owns(key[0])]:
            for item in self.lanes.pop(key).queue:
                self._in_hand.discard((item.subscription_id, item.event.seq))
        for item in pending:
            self._take(item)

    def _busy(self, subscription_id: str) -> bool:
        """Whether a delivery of it is in flight or its outcome not yet written (it cannot change hands)."""
        running = any(lane.running for key, lane in self.lanes.items() if key[0] == subscription_id)
        return running or any(outcome["sid"] == subscription_id for outcome in self._outcomes)

    def _client(self, policy: EgressPolicy) -> aiohttp.ClientSession:
        connector = policy.connector(limit=self.settings.event_concurrency)
        timeout = aiohttp.ClientTimeout(total=self.settings.event_delivery_timeout_seconds)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def run(self) -> None:
        policies = EgressPolicies.from_settings(self.settings)
        transport, woken = await wakeup.listen(self.settings.run_dir)
        try:
            async with self._client(policies.webhooks) as webhook, self._client(policies.callbacks) as callback:
                client = Clients(webhook, policies.webhooks, callback, policies.callbacks)
                while True:
                    try:
                        busy = await self.step(client)
                    except Exception:
                        log.exception("event dispatch failed; retrying")
                        busy = False
                    if not busy:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(woken.wait(), self.settings.event_poll_interval_seconds)
                    woken.clear()
        finally:
            transport.close()

    async def step(self, client: Clients) -> bool:
        """One loop: write outcomes, resync if due, fan out, start ready lanes. True if events came in."""
        await self._write_outcomes()
        now = now_micros()
        if now - self._synced_at >= _RESYNC_SECONDS * 1_000_000:
            await self._resync()
        if now - self._purged_at >= _PURGE_SECONDS * 1_000_000:
            self._purged_at = now
            async with self.database.write() as conn:
                await repository.purge(conn, now - int(self.settings.event_retention_seconds * 1_000_000))
        async with self.database.read() as conn:
            new_events = await repository.has_new_events(conn)
        taken, created = 0, list[repository.Pending]()
        if new_events:  # the cursor is locked while it moves: one dispatcher fans each event out
            async with self.database.write() as conn:
                taken, created = await repository.fan_out(conn, now, _FAN_OUT_BATCH)
        if created and any(p.subscription_id not in self.subscriptions for p in created):
            await self._resync()  # a subscription newer than our list
        for pending in created:
            self._take(pending)
        heads = [lane.queue[0].event.time for lane in self.lanes.values() if lane.queue]
        OUTBOX_LAG.set(max(0.0, (now - min(heads)) / 1e6) if heads else 0.0)
        for key, lane in list(self.lanes.items()):
            if not lane.queue and not lane.running:
                del self.lanes[key]
            elif lane.ready(now):
                lane.running = True
                task = asyncio.create_task(self._send(client, key, lane))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return taken > 0

    def _outcome(self, item: Pending, status: str, error: str | None, now: int) -> None:
        self._outcomes.append(
            {
                "sid": item.subscription_id,
                "seq": item.event.seq,
                "new_status": status,
                "new_attempts": item.attempts,
                "next_at": item.next_attempt_at,
                "error": error,
                "now": now,
            }
        )

    async def _send(self, client: Clients, key: LaneKey, lane: Lane) -> None:
        try:
            async with self._slots:
                while lane.queue and lane.queue[0].next_attempt_at <= now_micros():
                    subscription = self.subscriptions.get(key[0])
                    if subscription is None:
                        return
                    batch = lane.queue[: subscription.max_events_per_batch]
                    attempt = max(item.attempts for item in batch) + 1
                    session, policy = client.of(subscription)
                    events = [i.event for i in batch]
                    status = await webhooks.deliver(
                        session, policy, subscription, events, self.topic, attempt, self.signer
                    )
                    now = now_micros()
                    if status is not None and 200 <= status < 300:
                        DELIVERIES.labels(DELIVERED).inc(len(batch))
                        del lane.queue[: len(batch)]
                        for item in batch:
                            item.attempts = attempt
                            self._outcome(item, DELIVERED, None, now)
                        continue
                    error = f"HTTP {status}" if status is not None else "no response (refused, reset or timed out)"
                    for item in batch:
                        state, item.next_attempt_at = self.policy.after_failure(attempt, status, item.event.time, now)
                        item.attempts = attempt
                        self._outcome(item, state, error, now)
                        DELIVERIES.labels("failed" if state != DEAD else DEAD).inc()
                        if state == DEAD:
                            lane.queue.remove(item)
        finally:
            lane.running = False

    async def _write_outcomes(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        async with self.database.write() as conn:
            await repository.record_outcomes(conn, outcomes)
        # Only now may a resync see these rows as settled; before, it would take them again.
        for outcome in outcomes:
            if outcome["new_status"] != repository.PENDING:
                self._in_hand.discard((outcome["sid"], outcome["seq"]))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._write_outcomes()


async def run(settings: Settings) -> None:
    database = Database(settings.effective_database_url)
    dispatcher = Dispatcher(database, settings, default_topic(settings))
    try:
        async with database.session_locks() as locks:
            if locks is not None:  # PostgreSQL: the dispatchers of every node share the subscriptions
                dispatcher.shares = Shares(locks)
                await dispatcher.shares.join()
                await dispatcher.run()
                return
        # SQLite (one machine): one dispatcher; a second one waits as a standby.
        async with database.exclusive("event-dispatcher"):
            await dispatcher.run()
    finally:
        await dispatcher.close()
        await database.dispose()


def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
