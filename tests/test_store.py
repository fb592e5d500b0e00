"""The store's failure paths on real SQLite: cancellation at every await of a write, a block
that breaks its savepoint, and more concurrent reads than the pool has connections.

Each test ends with a write that must complete: before these were fixed, any of them left
the group committer waiting forever (holding ``BEGIN IMMEDIATE`` and the cross-process lock)
or blocked the event loop in the pool's checkout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from vrooms.store.database import Database, WriteAborted

# Long enough never to fire on a healthy store; the failures these guard against are hangs.
HANG = 10


async def _database(tmp_path: Path, pool_size: int = 8) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}", pool_size=pool_size)
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t (v TEXT PRIMARY KEY)"))
    return database


async def _insert(database: Database, value: str, *, pause: asyncio.Event | None = None) -> None:
    async with database.write() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        if pause is not None:
            await pause.wait()


async def _values(database: Database) -> set[str]:
    async with database.read() as conn:
        return {row.v for row in await conn.execute(text("SELECT v FROM t"))}


async def _yield_times(steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


@pytest.mark.parametrize("steps", range(12))
async def test_a_writer_cancelled_at_any_await_never_hangs_the_others(tmp_path: Path, steps: int) -> None:
    """Cancel one of three concurrent writers after ``steps`` loop turns: every await of the
    write path (waiting for the turn, granted but not yet resumed, inside the block, waiting
    for the commit) is hit by one of the steps."""
    database = await _database(tmp_path)
    try:
        writers = [asyncio.create_task(_insert(database, name)) for name in ("a", "victim", "c")]
        await _yield_times(steps)
        writers[1].cancel()
        outcomes = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), HANG)
        await asyncio.wait_for(_insert(database, "after"), HANG)
        values = await _values(database)
        assert {"a", "c", "after"} <= values
        if outcomes[1] is None:  # cancelled too late to matter: acknowledged, so stored
            assert "victim" in values
    finally:
        await database.dispose()


async def test_a_writer_cancelled_inside_its_block_undoes_only_its_own_work(tmp_path: Path) -> None:
    database = await _database(tmp_path)
    try:
        paused = asyncio.Event()
        victim = asyncio.create_task(_insert(database, "victim", pause=paused))
        other = asyncio.create_task(_insert(database, "other"))
        await _yield_times(5)
        victim.cancel()
        await asyncio.wait_for(asyncio.gather(victim, other, return_exceptions=True), HANG)
        assert await _values(database) == {"other"}
    finally:
        await database.dispose()


async def test_a_block_that_breaks_its_savepoint_fails_its_batch_and_the_store_goes_on(tmp_path: Path) -> None:
    """A block that ends the shared transaction itself makes its savepoint's rollback raise:
    nobody in that batch is acknowledged, and later writes work."""
    database = await _database(tmp_path)
    try:
        blocker = asyncio.Event()

        async def breaker() -> None:
            async with database.write() as conn:
                await blocker.wait()  # the others queue behind it, in the same batch
                await conn.execute(text("ROLLBACK"))
                raise RuntimeError("the caller's own failure")

        tasks = [asyncio.create_task(breaker())]
        await _yield_times(3)
        tasks += [asyncio.create_task(_insert(database, name)) for name in ("x", "y")]
        await _yield_times(3)
        blocker.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), HANG)
        assert all(isinstance(outcome, Exception) for outcome in outcomes[:1])
        await asyncio.wait_for(_insert(database, "after"), HANG)
        values = await _values(database)
        assert "after" in values
        for name, outcome in zip(("x", "y"), outcomes[1:], strict=True):
            # Acknowledged means stored; a write of the broken batch is refused, not lost.
            assert (outcome is None) == (name in values)
            assert outcome is None or isinstance(outcome, WriteAborted | Exception)
    finally:
        await database.dispose()


async def test_more_readers_than_connections_wait_without_blocking_the_loop(tmp_path: Path) -> None:
    """Readers holding every pooled connection across awaits: one more waits for a free
    connection asynchronously, while the loop (here, the task releasing them) keeps running."""
    database = await _database(tmp_path, pool_size=2)
    try:
        release = asyncio.Event()

        async def holder() -> None:
            async with database.read() as conn:
                await conn.execute(text("SELECT 1"))
                await release.wait()

        holders = [asyncio.create_task(holder()) for _ in range(2)]
        await _yield_times(3)
        extra = asyncio.create_task(_values(database))
        await _yield_times(3)
        assert not extra.done()
        release.set()  # runs only if the extra reader did not block the loop
        await asyncio.wait_for(asyncio.gather(*holders), HANG)
        assert await asyncio.wait_for(extra, HANG) == set()
    finally:
        await database.dispose()
