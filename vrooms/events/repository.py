"""Events in SQL: the outbox, subscriptions, deliveries and the fan-out cursor."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, update

from vrooms.api.times import now_micros
from vrooms.events.models import CALLBACK_SCHEMA, Event, StoredEvent, Subscription
from vrooms.store.database import Connection, rows_affected
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


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(row.seq, row.id, row.type, row.subject, row.order_key, orjson.loads(row.data), row.time)


def _subscription(row: Any) -> Subscription:
    types = tuple(orjson.loads(row.event_types)) if row.event_types else None
    return Subscription(
        id=row.id,
        name=row.name,
        endpoint=row.endpoint,
        schema=row.schema,
        event_types=types,
        subject_begins_with=row.subject_begins_with,
        subject_ends_with=row.subject_ends_with,
        secret=row.secret,
        max_events_per_batch=row.max_events_per_batch,
        start_seq=row.start_seq,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def last_event_seq(conn: Connection) -> int:
    return int((await conn.execute(select(func.coalesce(func.max(events.c.seq), 0)))).scalar_one())


async def insert_subscription(conn: Connection, subscription: Subscription) -> None:
    values = {k: v for k, v in asdict(subscription).items() if k != "event_types"}
    types = orjson.dumps(list(subscription.event_types)).decode() if subscription.event_types else None
    await conn.execute(insert(event_subscriptions).values(**values, event_types=types))


async def subscription_named(conn: Connection, name: str) -> Subscription | None:
    row = (await conn.execute(select(event_subscriptions).where(event_subscriptions.c.name == name))).first()
    return _subscription(row) if row else None


async def list_subscriptions(conn: Connection) -> list[Subscription]:
    rows = await conn.execute(select(event_subscriptions).order_by(event_subscriptions.c.created_at))
    return [_subscription(row) for row in rows.all()]


async def expire_subscription(conn: Connection, name: str, at: int) -> None:
    """A call connection ended: its callbacks may still be retried until ``at``, then it goes."""
    await conn.execute(update(event_subscriptions).where(event_subscriptions.c.name == name).values(expires_at=at))


async def live_callback_subscriptions(conn: Connection) -> list[Subscription]:
    """Callback subscriptions of connections that never ended (their call host stopped)."""
    query = select(event_subscriptions).where(
        event_subscriptions.c.schema == CALLBACK_SCHEMA, event_subscriptions.c.expires_at.is_(None)
    )
    return [_subscription(row) for row in (await conn.execute(query)).all()]


async def delete_subscription(conn: Connection, name: str) -> bool:
    result = await conn.execute(delete(event_subscriptions).where(event_subscriptions.c.name == name))
    return bool(rows_affected(result))


@dataclass
class Pending:
    """One delivery the dispatcher has in hand."""

    subscription_id: str
    event: StoredEvent
    attempts: int
    next_attempt_at: int


async def has_new_events(conn: Connection) -> bool:
    """Whether fan-out has work: a read, so an idle dispatcher never takes the write lock."""
    cursor = select(event_fanout.c.last_seq).where(event_fanout.c.id == 1).scalar_subquery()
    return (await conn.execute(select(events.c.seq).where(events.c.seq > cursor).limit(1))).first() is not None


async def fan_out(conn: Connection, now: int, limit: int) -> tuple[int, list[Pending]]:
    """Create delivery rows for events not yet fanned out: (events taken, deliveries created).

    The cursor moves in the same transaction, so each event is fanned out exactly once.
    """
    cursor = select(event_fanout.c.last_seq).where(event_fanout.c.id == 1).with_for_update()
    last = int((await conn.execute(cursor)).scalar_one())
    rows = (await conn.execute(select(events).where(events.c.seq > last).order_by(events.c.seq).limit(limit))).all()
    if not rows:
        return 0, []
    subscriptions = await list_subscriptions(conn)
    created = [
        Pending(subscription.id, event, 0, now)
        for event in map(_stored, rows)
        for subscription in subscriptions
        if subscription.matches(event)
    ]
    if created:
        await conn.execute(
            insert(event_deliveries),
            [
                {
                    "subscription_id": p.subscription_id,
                    "event_seq": p.event.seq,
                    "order_key": p.event.order_key,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
                for p in created
            ],
        )
    await conn.execute(update(event_fanout).where(event_fanout.c.id == 1).values(last_seq=rows[-1].seq))
    return len(rows), created


async def pending_deliveries(
    conn: Connection, *, changed_since: int = 0, subscriptions: list[str] | None = None
) -> list[Pending]:
    """Pending deliveries in event order: all of them at start-up, later those changed by others
    (replays, fan-outs by another node's dispatcher), or all of some subscriptions (taken over)."""
    query = (
        select(
            event_deliveries.c.subscription_id, event_deliveries.c.attempts, event_deliveries.c.next_attempt_at, events
        )
        .join(events, events.c.seq == event_deliveries.c.event_seq)
        .where(event_deliveries.c.status == PENDING, event_deliveries.c.updated_at >= changed_since)
        .order_by(event_deliveries.c.event_seq)
    )
    if subscriptions is not None:
        query = query.where(event_deliveries.c.subscription_id.in_(subscriptions))
    return [
        Pending(row.subscription_id, _stored(row), row.attempts, row.next_attempt_at)
        for row in (await conn.execute(query)).all()
    ]


_OUTCOME = (
    update(event_deliveries)
    .where(
        event_deliveries.c.subscription_id == bindparam("sid"),
        event_deliveries.c.event_seq == bindparam("seq"),
    )
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error"),
        updated_at=bindparam("now"),
    )
)


async def record_outcomes(conn: Connection, outcomes: list[dict[str, Any]]) -> None:
    """Many delivery outcomes in one statement (keys: sid, seq, new_status, new_attempts, next_at, error, now)."""
    if outcomes:
        await conn.execute(_OUTCOME, outcomes)


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
    return rows_affected(result)


async def delivery_counts(conn: Connection) -> dict[str, int]:
    rows = await conn.execute(select(event_deliveries.c.status, func.count()).group_by(event_deliveries.c.status))
    return {str(status): int(count) for status, count in map(tuple, rows)}


async def purge(conn: Connection, before: int) -> None:
    """Drop what is settled and older than ``before``: delivered rows, and events nobody still needs.

    Dead letters stay until replayed or their subscription is deleted (a call connection's
    callbacks: once its retries are over, ``expires_at``); an event stays
    while any delivery of it is pending or dead-lettered, or before fan-out took it.
    """
    await conn.execute(
        delete(event_deliveries).where(event_deliveries.c.status == DELIVERED, event_deliveries.c.updated_at < before)
    )
    await conn.execute(delete(event_subscriptions).where(event_subscriptions.c.expires_at < now_micros()))
    fanned_out = select(event_fanout.c.last_seq).where(event_fanout.c.id == 1).scalar_subquery()
    unsettled = select(event_deliveries.c.event_seq).where(event_deliveries.c.status != DELIVERED)
    await conn.execute(
        delete(events).where(events.c.time < before, events.c.seq <= fanned_out, events.c.seq.not_in(unsettled))
    )
