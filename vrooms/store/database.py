"""Engines and transactions, behind one small ``Connection`` interface.

``write()`` opens a transaction that is durable when it commits; ``read()`` opens a
read transaction. Repositories only ``await conn.execute(...)``, whatever the backend:

* PostgreSQL (asyncpg): a real async connection; commits are durable by default.
* SQLite: statements run inline on the event loop through the stdlib driver. SQLite
  is an in-process library whose reads take microseconds, so a thread hop per call
  (aiosqlite) cost more than the work (measured in BENCHMARKS.md). WAL mode lets reads
  proceed while another process writes; writes take the lock up front (``BEGIN
  IMMEDIATE``, so two writers never deadlock upgrading a read lock) and commit with
  ``synchronous=FULL``.
* SQLite group commit: the write blocks of concurrent requests run one after another
  inside one transaction, each in its own savepoint (a failing block undoes only its
  own work), and the batch commits with one fsync; every caller's ``write()`` returns
  only after that commit, so nothing is acknowledged before it is on disk. A writer
  cancelled at any await hands its turn back; a block that breaks the shared transaction
  (its savepoint cannot be ended) fails its batch, whose writers then get an error: the
  committer never waits for ever while holding the lock (tests/test_store.py).
* Reads beyond the pool's size wait for a connection on the event loop, never in the
  pool's blocking checkout.
* Writers of all processes (workers, CLI) first queue on an ``flock`` of
  ``<db>.write-lock``, waited for in a thread: SQLite's own busy handler would sleep
  on the event loop with growing back-offs (p99 of 475 ms, BENCHMARKS.md), while a
  released flock wakes the next writer at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import Executable

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_GROUP_COMMIT = 64
T = TypeVar("T")


class Connection(Protocol):
    """What repositories need from a connection (``Connection`` satisfies it)."""

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]: ...

    async def run_sync(self, fn: Callable[[SyncConnection], T]) -> T: ...


class InlineConnection:
    """A synchronous SQLite connection with the async ``Connection`` interface."""

    def __init__(self, connection: SyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        return self._connection.execute(statement, parameters)

    async def run_sync(self, fn: Callable[[SyncConnection], T]) -> T:
        return fn(self._connection)


class SessionLocks:
    """Named advisory locks of one PostgreSQL session (``kind`` separates the names' spaces)."""

    _KIND = 7  # the first key of every lock taken here; the second is hashtext(name)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def _run(self, sql: str, name: str) -> Any:
        result = (await self._connection.execute(text(sql), {"kind": self._KIND, "name": name})).scalar()
        await self._connection.commit()  # the locks are the session's; no transaction stays open
        return result

    async def try_lock(self, name: str) -> bool:
        return bool(await self._run("SELECT pg_try_advisory_lock(:kind, hashtext(:name))", name))

    async def unlock(self, name: str) -> None:
        await self._run("SELECT pg_advisory_unlock(:kind, hashtext(:name))", name)

    async def share(self, name: str) -> None:
        """Hold ``name`` shared: ``sharers`` counts the processes that do (presence)."""
        await self._run("SELECT pg_advisory_lock_shared(:kind, hashtext(:name))", name)

    async def sharers(self, name: str) -> int:
        return int(
            await self._run(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :kind"
                " AND objid::text::bigint = (hashtext(:name)::bigint & 4294967295)"
                # Advisory locks are per database; pg_locks shows every database's.
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                name,
            )
        )


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (its result is a cursor result on every backend)."""
    return int(cast(CursorResult[Any], result).rowcount)


def normalize_url(url: str) -> str:
    """SQLite runs on the stdlib driver; PostgreSQL on asyncpg."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: SyncConnection) -> None:
        connection.exec_driver_sql(begin)

    return engine


class WriteAborted(Exception):
    """A write's transaction was rolled back because another block in its batch broke it."""


@dataclass
class _Batch:
    committed: asyncio.Future[None]
    block_done: asyncio.Future[None]


def _end_block(batch: _Batch, end: Callable[[], None]) -> None:
    """End a writer's savepoint and let the committer go on, whatever happens.

    A savepoint that cannot be ended leaves the shared transaction in an unknown state:
    the committer then fails the whole batch (nobody's write is acknowledged) rather than
    commit it or wait forever.
    """
    try:
        end()
    except BaseException as error:
        batch.block_done.set_exception(error)
        raise
    batch.block_done.set_result(None)


class Database:
    """The service's handle on its database."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = normalize_url(url)
        self._async: AsyncEngine | None = None
        if self.url.startswith("sqlite"):
            self._writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", pool_size=1)
            self._reader = _sqlite_engine(self.url, begin="BEGIN", pool_size=pool_size)
            self._read_slots = asyncio.Semaphore(pool_size)
            self._turns: deque[asyncio.Future[tuple[SyncConnection, _Batch]]] = deque()
            self._committer: asyncio.Task[None] | None = None
            database = make_url(self.url).database
            self._lock_path = f"{database}.write-lock" if database and database != ":memory:" else None
            self._lock_fd: int | None = None
        else:
            self._async = create_async_engine(self.url, pool_size=pool_size, max_overflow=pool_size)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        if self._async is not None:
            async with self._async.begin() as postgres:
                yield postgres
            return
        turn: asyncio.Future[tuple[SyncConnection, _Batch]] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_batches(), name="sqlite-group-commit")
        connection, batch = await self._take_turn(turn)
        try:
            savepoint = connection.begin_nested()
        except BaseException as error:
            batch.block_done.set_exception(error)
            raise
        try:
            yield InlineConnection(connection)
        except BaseException:
            _end_block(batch, savepoint.rollback)
            raise
        _end_block(batch, savepoint.commit)
        await asyncio.shield(batch.committed)

    @staticmethod
    async def _take_turn(
        turn: asyncio.Future[tuple[SyncConnection, _Batch]],
    ) -> tuple[SyncConnection, _Batch]:
        """Wait for the committer to grant this writer the connection.

        A writer cancelled just after its turn was granted, before it resumed, would leave
        the committer waiting for its block forever (holding ``BEGIN IMMEDIATE`` and the
        cross-process lock): hand the turn back as an empty block.
        """
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                turn.result()[1].block_done.set_result(None)
            raise

    async def _commit_batches(self) -> None:
        """Grant queued writers their turn in shared transactions; one commit per batch."""
        loop = asyncio.get_running_loop()
        while self._turns:
            await self._lock_file()
            committed: asyncio.Future[None] = loop.create_future()
            # A failed batch whose only writer already raised its own error has nobody left to
            # await this: mark the failure seen, or asyncio reports it as never retrieved.
            committed.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                with self._writer.begin() as connection:
                    granted = 0
                    while self._turns and granted < MAX_GROUP_COMMIT:
                        turn = self._turns.popleft()
                        if turn.done():  # the caller gave up (cancelled) before its turn
                            continue
                        batch = _Batch(committed, loop.create_future())
                        turn.set_result((connection, batch))
                        await batch.block_done
                        granted += 1
                committed.set_result(None)
            except BaseException as error:
                # Writers waiting for this commit learn it failed; a writer's own
                # cancellation is not theirs, and only the committer's ends the loop.
                failure = error if isinstance(error, Exception) else WriteAborted("the write batch was aborted")
                committed.set_exception(failure)
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
            finally:
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def _lock_file(self) -> None:
        if self._lock_path is None:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, self._lock_fd, fcntl.LOCK_EX)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        if self._async is not None:
            async with self._async.connect() as postgres, postgres.begin():
                yield postgres
            return
        # A reader may hold its connection across awaits: the ones beyond the pool wait
        # here, on the loop, rather than in the pool's checkout, which would block it.
        async with self._read_slots:
            with self._reader.begin() as connection:
                yield InlineConnection(connection)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold a lock named ``name`` across every process using this database (waits for it).

        For work that must have one runner per database, such as event delivery: a second
        runner waits as a standby and takes over when the first one's process ends.
        PostgreSQL: a session-level advisory lock on a connection held meanwhile. SQLite:
        ``flock`` on a file beside the database (the processes share the machine).
        """
        if self._async is not None:
            async with self._async.connect() as connection:
                await connection.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": name})
                await connection.commit()  # the lock is the session's; no transaction stays open
                try:
                    yield
                finally:
                    await connection.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": name})
                    await connection.commit()
            return
        database = make_url(self.url).database
        fd = os.open(f"{database}.{name}-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    @asynccontextmanager
    async def session_locks(self) -> AsyncIterator[SessionLocks | None]:
        """Advisory locks held by one session of this process (PostgreSQL), released when it ends
        (whatever way the process ends): claims that need no expiry. None on SQLite."""
        if self._async is None:
            yield None
            return
        async with self._async.connect() as connection:
            yield SessionLocks(connection)

    async def dispose(self) -> None:
        if self._async is not None:
            await self._async.dispose()
        else:
            self._writer.dispose()
            self._reader.dispose()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
