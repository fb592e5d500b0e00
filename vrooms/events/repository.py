"""Events in SQL: the outbox, subscriptions, deliveries and the fan-out cursor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from vrooms.events.models import Event
from vrooms.store.database import Connection
from vrooms.store.tables import event_deliveries, event_fanout, event_subscriptions, events

PENDING, DELIVERED, DEAD = "pending", "delivered", "deadlettered"


async def append(conn: Connection, event: Event) -> None:
    """Add an event to the outbox, inside the caller's transaction (the state change's own)."""
    await conn.execute(
        insert(events).values(
            id=event.id,
            type=str(event.type),
            subject=event.subject,
            order_key=event.order_key,
            data=orjson.dumps(event.data).decode(),
            time=event.time,
        )
    )


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    type: str
    subject: str
    order_key: str
    data: dict[str, Any]
    time: int


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(row.seq, row.id, row.type, row.subject, row.order_key, orjson.loads(row.data), row.time)


@dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    endpoint: str
    schema: str
    event_types: tuple[str, ...] | None
    subject_begins_with: str | None
    subject_ends_with: str | None
    secret: str | None
    max_events_per_batch: int
    start_seq: int
    created_at: int

    def matches(self, event: StoredEvent) -> bool:
        return (
            event.seq > self.start_seq
            and (self.event_types is None or event.type in self.event_types)
            and (not self.subject_begins_with or event.subject.startswith(self.subject_begins_with))
            and (not self.subject_ends_with or event.subject.endswith(self.subject_ends_with))
        )


def _subscription(row: Any) -> Subscription:
    types = tuple(orjson.loads(row.event_types)) if row.event_types else None
    return Subscription(
        row.id,
        row.name,
        row.endpoint,
        row.schema,
        types,
        row.subject_begins_with,
        row.subject_ends_with,
        row.secret,
        row.max_events_per_batch,
        row.start_seq,
        row.created_at,
    )


async def last_event_seq(conn: Connection) -> int:
    return int((await conn.execute(select(func.coalesce(func.max(events.c.seq), 0)))).scalar_one())


async def insert_subscription(conn: Connection, subscription: Subscription) -> None:
    values = {k: v for k, v in subscription.__dict__.items() if k != "event_types"}
    types = orjson.dumps(list(subscription.event_types)).decode() if subscription.event_types else None
    await conn.execute(insert(event_subscriptions).values(**values, event_types=types))


async def subscription_named(conn: Connection, name: str) -> Subscription | None:
    row = (await conn.execute(select(event_subscriptions).where(event_subscriptions.c.name == name))).first()
    return _subscription(row) if row else None


async def list_subscriptions(conn: Connection) -> list[Subscription]:
    rows = await conn.execute(select(event_subscriptions).order_by(event_subscriptions.c.created_at))
    return [_subscription(row) for row in rows.all()]


async def delete_subscription(conn: Connection, name: str) -> bool:
    result = await conn.execute(delete(event_subscriptions).where(event_subscriptions.c.name == name))
    return bool(result.rowcount)


async def fan_out(conn: Connection, now: int, limit: int) -> int:
    """Create delivery rows for events not yet fanned out; returns how many events it took."""
    last = int((await conn.execute(select(event_fanout.c.last_seq).where(event_fanout.c.id == 1))).scalar_one())
    rows = (await conn.execute(select(events).where(events.c.seq > last).order_by(events.c.seq).limit(limit))).all()
    if not rows:
        return 0
    subscriptions = await list_subscriptions(conn)
    deliveries = [
        {
            "subscription_id": subscription.id,
            "event_seq": event.seq,
            "order_key": event.order_key,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "updated_at": now,
        }
        for event in map(_stored, rows)
        for subscription in subscriptions
        if subscription.matches(event)
    ]
    if deliveries:
        await conn.execute(insert(event_deliveries), deliveries)
    await conn.execute(update(event_fanout).where(event_fanout.c.id == 1).values(last_seq=rows[-1].seq))
    return len(rows)


@dataclass(frozen=True)
class Due:
    subscription_id: str
    event: StoredEvent
    attempts: int


async def due_deliveries(conn: Connection, now: int, limit: int) -> list[Due]:
    """Pending deliveries whose time has come and that no earlier pending one of their key holds back."""
    earlier = aliased(event_deliveries)
    held_back = exists().where(
        and_(
            earlier.c.subscription_id == event_deliveries.c.subscription_id,
            earlier.c.order_key == event_deliveries.c.order_key,
            earlier.c.status == PENDING,
            earlier.c.event_seq < event_deliveries.c.event_seq,
            earlier.c.next_attempt_at > now,
        )
    )
    query = (
        select(event_deliveries.c.subscription_id, event_deliveries.c.attempts, events)
        .join(events, events.c.seq == event_deliveries.c.event_seq)
        .where(event_deliveries.c.status == PENDING, event_deliveries.c.next_attempt_at <= now, ~held_back)
        .order_by(event_deliveries.c.event_seq)
        .limit(limit)
    )
    return [Due(row.subscription_id, _stored(row), row.attempts) for row in (await conn.execute(query)).all()]


async def record_outcome(
    conn: Connection,
    subscription_id: str,
    event_seq: int,
    *,
    status: str,
    attempts: int,
    next_attempt_at: int,
    error: str | None,
    now: int,
) -> None:
    await conn.execute(
        update(event_deliveries)
        .where(event_deliveries.c.subscription_id == subscription_id, event_deliveries.c.event_seq == event_seq)
        .values(status=status, attempts=attempts, next_attempt_at=next_attempt_at, last_error=error, updated_at=now)
    )


async def dead_letters(conn: Connection, subscription_id: str | None, limit: int) -> list[dict[str, Any]]:
    query = (
        select(event_deliveries, event_subscriptions.c.name, events.c.id, events.c.type, events.c.subject)
        .join(events, events.c.seq == event_deliveries.c.event_seq)
        .join(event_subscriptions, event_subscriptions.c.id == event_deliveries.c.subscription_id)
        .where(event_deliveries.c.status == DEAD)
        .order_by(event_deliveries.c.event_seq)
        .limit(limit)
    )
    if subscription_id is not None:
        query = query.where(event_deliveries.c.subscription_id == subscription_id)
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def replay_dead_letters(conn: Connection, subscription_id: str | None, now: int) -> int:
    """Put dead-lettered deliveries back in line, with a fresh retry budget."""
    query = update(event_deliveries).where(event_deliveries.c.status == DEAD)
    if subscription_id is not None:
        query = query.where(event_deliveries.c.subscription_id == subscription_id)
    result = await conn.execute(
        query.values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None, updated_at=now)
    )
    return int(result.rowcount)


async def delivery_counts(conn: Connection) -> dict[str, int]:
    rows = await conn.execute(select(event_deliveries.c.status, func.count()).group_by(event_deliveries.c.status))
    return {status: int(count) for status, count in rows.all()}
