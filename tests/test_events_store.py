"""The event store and policy without HTTP: fan-out, outcomes, purge, the retry schedule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.servers import create_postgres_database, drop_postgres_database
from vrooms.events import repository
from vrooms.events.models import Event, EventType, StoredEvent, Subscription
from vrooms.events.repository import DEAD, DELIVERED, PENDING
from vrooms.events.service import RetryPolicy
from vrooms.store.database import Database
from vrooms.store.migrate import upgrade_to_head

S = 1_000_000  # microseconds


def subscription(
    name: str, *, begins: str | None = None, ends: str | None = None, types: tuple[str, ...] | None = None
) -> Subscription:
    return Subscription(
        id=name,
        name=name,
        endpoint="http://x/",
        schema="EventGridSchema",
        event_types=types,
        subject_begins_with=begins,
        subject_ends_with=ends,
        secret=None,
        max_events_per_batch=1,
        start_seq=0,
        created_at=0,
    )


def test_retry_policy_follows_the_schedule_then_dead_letters() -> None:
    policy = RetryPolicy((10, 30, 60), max_attempts=5, ttl_seconds=3600)
    delays = []
    for attempt in range(1, 5):
        state, next_at = policy.after_failure(attempt, 503, first_time=0, now=0)
        assert state == PENDING
        delays.append(next_at / S)
    # Each delay within +-10% of the schedule; the last one repeats.
    assert all(0.9 * d <= got <= 1.1 * d for d, got in zip([10, 30, 60, 60], delays, strict=True))
    assert policy.after_failure(5, 503, 0, 0)[0] == DEAD  # budget spent
    assert policy.after_failure(1, 400, 0, 0)[0] == DEAD  # not retried, as Event Grid
    assert policy.after_failure(1, 413, 0, 0)[0] == DEAD
    assert policy.after_failure(1, None, first_time=0, now=3599 * S)[0] == DEAD  # past the TTL


async def test_fan_out_outcomes_and_purge(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'events.db'}")
    await upgrade_to_head(database)
    try:
        async with database.write() as conn:
            for subject in ("room/1", "room/2", "room/1"):
                await repository.append(conn, Event(EventType.ROOM_UPDATED, subject, subject, {}, time=100 * S))
            for name, begins in (("all", None), ("room-1", "room/1")):
                await repository.insert_subscription(
                    conn,
                    subscription(name, begins=begins),
                )
        async with database.write() as conn:
            taken, created = await repository.fan_out(conn, now=200 * S, limit=100)
            again, none = await repository.fan_out(conn, now=200 * S, limit=100)
        assert (taken, again, none) == (3, 0, [])
        assert sorted((p.subscription_id, p.event.subject) for p in created) == [
            ("all", "room/1"),
            ("all", "room/1"),
            ("all", "room/2"),
            ("room-1", "room/1"),
            ("room-1", "room/1"),
        ]
        statuses = {("all", 1): DELIVERED, ("all", 2): DELIVERED, ("all", 3): DELIVERED, ("room-1", 1): DEAD}
        async with database.write() as conn:
            await repository.record_outcomes(
                conn,
                [
                    {
                        "sid": sid,
                        "seq": seq,
                        "new_status": st,
                        "new_attempts": 1,
                        "next_at": 0,
                        "error": None,
                        "now": 300 * S,
                    }
                    for (sid, seq), st in statuses.items()
                ],
            )
            await repository.purge(conn, before=1000 * S)
        async with database.read() as conn:
            left = await repository.pending_deliveries(conn)
            dead = await repository.dead_letters(conn, None, 10)
            assert await repository.delivery_counts(conn) == {PENDING: 1, DEAD: 1}
        # Event 2 went everywhere it had to: gone. 1 is dead-lettered, 3 still pending: kept.
        assert [(p.subscription_id, p.event.seq) for p in left] == [("room-1", 3)]
        assert [d["event_seq"] for d in dead] == [1]
        async with database.write() as conn:
            assert await repository.replay_dead_letters(conn, "room-1", now=2000 * S) == 1
        async with database.read() as conn:
            assert [p.event.seq for p in await repository.pending_deliveries(conn, changed_since=2000 * S)] == [1]
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    "subject, begins, ends, types, expected",
    [
        ("room/1/call/c", "room/1", None, None, True),
        ("room/12/call/c", "room/1/", None, None, False),
        ("room/1/call/c", None, "/call/c", None, True),
        ("room/1", None, None, ("Vrooms.Rooms.RoomCreated",), False),
    ],
)
def test_subscription_filters(
    subject: str, begins: str | None, ends: str | None, types: tuple[str, ...] | None, expected: bool
) -> None:
    event = StoredEvent(1, "e", "Vrooms.Rooms.RoomUpdated", subject, "k", {}, 0)
    assert subscription("s", begins=begins, ends=ends, types=types).matches(event) is expected


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_one_dispatcher_per_database(tmp_path: Path, backend: str) -> None:
    """``Database.exclusive``: a second holder waits until the first lets go."""
    url = await create_postgres_database() if backend == "postgresql" else f"sqlite:///{tmp_path / 'x.db'}"
    first, second = Database(url), Database(url)
    try:
        order: list[str] = []

        async def standby() -> None:
            async with second.exclusive("event-dispatcher"):
                order.append("second")

        async with first.exclusive("event-dispatcher"):
            waiting = asyncio.create_task(standby())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # still standing by
            order.append("first done")
        await asyncio.wait_for(waiting, 10)
        assert order == ["first done", "second"]
    finally:
        await first.dispose()
        await second.dispose()
        if backend == "postgresql":
            await drop_postgres_database(url)
