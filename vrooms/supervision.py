"""Watching the parts vrooms depends on: for hangs (a heartbeat) and with back-off between restarts.

A process that exits is easy to notice; one that hangs (SIGSTOP, a deadlock, a full disk
under a synchronous write) answers nothing and holds every request that waits on it for
that request's own timeout, for ever. ``heartbeat`` probes a part every ``every`` seconds
and returns once ``misses`` probes in a row failed or took longer than ``timeout``: with
the defaults a hung part is declared lost within 2 x (0.5 + 1.5) = 4 s. ``Backoff`` spaces
restarts (doubling, with jitter so that many nodes or clients do not return in step).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("vrooms")

T = TypeVar("T")

HEARTBEAT_SECONDS = 0.5
HEARTBEAT_TIMEOUT_SECONDS = 1.5
HEARTBEAT_MISSES = 2


async def heartbeat(
    probe: Callable[[], Awaitable[object]],
    *,
    every: float = HEARTBEAT_SECONDS,
    timeout: float = HEARTBEAT_TIMEOUT_SECONDS,
    misses: int = HEARTBEAT_MISSES,
) -> str:
    """Probe until ``misses`` probes in a row fail; returns why the last one failed."""
    missed = 0
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.wait_for(probe(), timeout)
        except TimeoutError:
            missed, reason = missed + 1, f"no answer within {timeout:.1f} s"
        except Exception as exc:
            missed, reason = missed + 1, f"{type(exc).__name__}: {exc}"
        else:
            missed = 0
            continue
        if missed >= misses:
            return reason


async def to_the_end(cleanup: Awaitable[T]) -> T:
    """Await ``cleanup`` to its end even if the caller is cancelled meanwhile, then re-raise the
    cancellation. ``asyncio.shield`` alone lets a second cancel (an interrupt, then a hang-up)
    end the caller while the cleanup still runs, so the caller's callback would be sent before
    what it held (a Janus feed, a process) is released."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


def cancel_others(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` but the one running this (a stop called from one of them finishes itself)."""
    current = asyncio.current_task()
    for task in tasks:
        if task is not current:
            task.cancel()


class Backoff:
    """Delays between restarts: ``first``, doubling up to ``most``, each within +-25 % (jitter)."""

    def __init__(self, first: float = 0.25, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self._next = self.first


class TaskSet:
    """A service's background tasks: held (asyncio keeps only weak references to tasks), each
    failure logged with its traceback (an unawaited task's exception is otherwise lost), and
    cancelled together when the service stops."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("a background task failed", exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel them all, without waiting for them to end."""
        for task in list(self._tasks):
            task.cancel()

    async def wait(self, timeout: float) -> None:
        """Let them finish, for at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def settled(self) -> None:
        """Wait until no task is left, counting those spawned meanwhile (their failures are logged)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
