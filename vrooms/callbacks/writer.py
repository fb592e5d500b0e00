"""A call connection's callbacks, written to the events outbox in the order they happen.

Each connection has a callback subscription (schema ``CALLBACK_SCHEMA``, made in the
transaction that writes ``CallConnected``), so the event dispatcher delivers callbacks
with the machinery it uses for Event Grid: durable, at least once, in order per
connection, retried when the app's endpoint is down. When the connection ends, its
subscription is kept until every retry is over (``event_ttl_seconds``), then purged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from vrooms.api.times import now_micros
from vrooms.egress import EgressPolicy, EgressRefused
from vrooms.errors import bad_argument
from vrooms.events import repository
from vrooms.events.models import CALLBACK_SCHEMA, Event, EventType, Subscription
from vrooms.store.database import Connection, Database

log = logging.getLogger("vrooms.automation")

_PREFIX = "callback:"
_RETRY_SECONDS = 1.0
# Events computed when written (ParticipantsUpdated lists the participants of that moment;
# None: nothing changed since the last one).
Pending = Event | Callable[[], Event | None]


def subject(connection_id: str) -> str:
    return f"calling/callConnections/{connection_id}"


def subscription_name(connection_id: str, call_id: str) -> str:
    return f"{_PREFIX}{connection_id}:{call_id}"


def parse_name(name: str) -> tuple[str, str] | None:
    """(connection id, call id) of a callback subscription's name."""
    if not name.startswith(_PREFIX):
        return None
    connection_id, _, call_id = name[len(_PREFIX) :].partition(":")
    return connection_id, call_id


def event(connection_id: str, kind: EventType, data: dict[str, Any]) -> Event:
    return Event(kind, subject(connection_id), connection_id, data)


async def check_uri(policy: EgressPolicy, uri: str, field: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
    """A URL the server will open later, refused now (400 naming ``field``) if the egress policy
    forbids it; the delivery checks again, at the address it connects to."""
    try:
        await policy.check(uri, schemes)
    except EgressRefused as exc:
        raise bad_argument(str(exc), field) from None


async def open_subscription(conn: Connection, connection_id: str, call_id: str, callback_uri: str) -> None:
    await repository.insert_subscription(
        conn,
        Subscription(
            name=subscription_name(connection_id, call_id),
            endpoint=callback_uri,
            schema=CALLBACK_SCHEMA,
            event_types=None,
            subject_begins_with=subject(connection_id),
            subject_ends_with=None,
            secret=None,
            max_events_per_batch=1,
            id=str(uuid.uuid4()),
            start_seq=await repository.last_event_seq(conn),
            created_at=now_micros(),
        ),
    )


class CallbackWriter:
    """One connection's queue to the outbox: ``emit`` never blocks; a task writes in order."""

    def __init__(self, database: Database, name: str, retry_seconds: float, written: Callable[[], None]) -> None:
        self._database = database
        self._written = written
        self._name = name
        self._retry_micros = int(retry_seconds * 1_000_000)
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def emit(self, pending: Pending) -> None:
        if not self._closing:
            self._queue.append(pending)
            self._wake.set()

    def close(self) -> None:
        """No more events: the last ones are written, then the subscription is set to expire."""
        self._closing = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            closing = self._closing
            try:
                await self._write(batch, expire=closing)
                self._written()
            except Exception:
                log.exception("writing call automation callbacks failed; retrying in %s s", _RETRY_SECONDS)
                self._queue[:0] = batch
                await asyncio.sleep(_RETRY_SECONDS)
                self._wake.set()
                continue
            if closing and not self._queue:
                return

    async def _write(self, batch: list[Pending], *, expire: bool) -> None:
        async with self._database.write() as conn:
            for pending in batch:
                written = pending() if callable(pending) else pending
                if written is not None:
                    await repository.append(conn, written)
            if expire:
                await repository.expire_subscription(conn, self._name, now_micros() + self._retry_micros)
