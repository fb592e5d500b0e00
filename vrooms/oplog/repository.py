"""Writing the operation log in batches, and querying it.

Records are buffered and written every ``oplog_flush_interval_seconds`` in one
transaction, so that a GET never waits for a disk flush. The price, documented in the
README: a ``kill -9`` can lose the records of the last interval (never a room write).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import fields

from sqlalchemy import insert, select

from vrooms.oplog.records import OperationRecord
from vrooms.store.database import Connection, Database
from vrooms.store.tables import operation_log

log = logging.getLogger("vrooms.oplog")
_COLUMNS = [f.name for f in fields(OperationRecord)]
# Records kept in memory while writes fail; beyond it the oldest go (the log must not
# take the worker's memory with it).
MAX_PENDING = 100_000


class OperationLogWriter:
    def __init__(self, database: Database, interval_seconds: float) -> None:
        self._database = database
        self._interval = interval_seconds
        self._pending: list[OperationRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.dropped = 0

    def append(self, record: OperationRecord) -> None:
        self._pending.append(record)
        if len(self._pending) > MAX_PENDING:  # the database has been failing for a long time
            del self._pending[: len(self._pending) - MAX_PENDING]
            self.dropped += 1
            if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                log.error("operation log: %d records dropped while the database refused writes", self.dropped)

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self._database.write() as conn:
                await conn.execute(insert(operation_log), [r.as_row() for r in batch])
        except BaseException as error:
            # Keep the records for the next attempt rather than drop them.
            self._pending[:0] = batch
            if not isinstance(error, Exception):
                raise
            log.exception("could not write %d operation-log records; will retry", len(batch))

    async def _run(self) -> None:
        # Stopping is a signal, not a cancellation: a flush is never interrupted mid-write.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            await self.flush()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="oplog-writer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.flush()


async def query(
    conn: Connection,
    *,
    room_id: str | None = None,
    operation: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
) -> list[OperationRecord]:
    """The newest ``limit`` records that match, oldest first (as a log reads)."""
    statement = select(*(operation_log.c[name] for name in _COLUMNS)).order_by(operation_log.c.seq.desc())
    if room_id is not None:
        statement = statement.where(operation_log.c.room_id == room_id)
    if operation is not None:
        statement = statement.where(operation_log.c.operation_name == operation)
    if since is not None:
        statement = statement.where(operation_log.c.time_generated >= since)
    if until is not None:
        statement = statement.where(operation_log.c.time_generated < until)
    rows = await conn.execute(statement.limit(limit))
    return [OperationRecord(**row._asdict()) for row in reversed(rows.all())]
