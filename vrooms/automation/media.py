"""A call connection's media operations (prompts, DTMF recognition): one at a time, in order.

ACS queues an app's play and recognize requests and runs them in turn; one sent with
``interruptCallMediaOperation`` cancels the running one and everything queued ahead of
it, and ``cancelAllMediaOperations`` cancels them all. Each cancelled operation reports
its own ``...Canceled`` callback. DTMF collection (``DtmfCollector``) is pure logic with
timers: tones in, one outcome out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from vrooms.callbacks.results import Outcome

log = logging.getLogger("vrooms.automation")


@dataclass(eq=False)
class MediaOperation:
    work: Callable[[], Coroutine[Any, Any, None]]
    # Reports the cancellation (PlayCanceled, RecognizeCanceled); runs once the work has cleaned up.
    cancelled: Callable[[], None]
    # Reports a failure the work did not report itself (PlayFailed, RecognizeFailed): an app
    # waits for one callback per operation, whatever went wrong.
    failed: Callable[[], None]


class MediaQueue:
    def __init__(self) -> None:
        self._waiting: deque[MediaOperation] = deque()
        self._running: tuple[MediaOperation, asyncio.Task[None]] | None = None

    def submit(self, operation: MediaOperation, *, interrupt: bool) -> None:
        if interrupt:
            self.cancel_all()
        self._waiting.append(operation)
        self._next()

    def cancel_all(self) -> None:
        while self._waiting:
            self._waiting.popleft().cancelled()
        if self._running is not None:
            self._running[1].cancel()

    def _next(self) -> None:
        if self._running is None and self._waiting:
            operation = self._waiting.popleft()
            task = asyncio.get_running_loop().create_task(operation.work())
            self._running = operation, task
            task.add_done_callback(partial(self._finished, operation))

    def _finished(self, operation: MediaOperation, task: asyncio.Task[None]) -> None:
        """Report how the work ended and start the next. A done callback, not a ``try`` in the task:
        a task cancelled before its first step never runs its body, and its operation must still
        be reported and the queue move on (else no callback ever, and every later one waits)."""
        self._running = None
        if task.cancelled():
            operation.cancelled()
        elif task.exception() is not None:
            log.error("a call automation media operation failed", exc_info=task.exception())
            operation.failed()
        self._next()


class DtmfCollector:
    """Collects one recognize request's digits: up to ``max_tones``, until a stop tone or a silence.

    The initial-silence timer starts when the prompt has played (``listen``); tones keyed
    during the prompt count. ``first_tone`` is set at the first digit (barge-in).
    """

    def __init__(self, *, max_tones: int, stop_tones: str, inter_tone_seconds: float) -> None:
        self.max_tones = max_tones
        self.stop_tones = stop_tones
        self.inter_tone_seconds = inter_tone_seconds
        self.tones: list[str] = []
        self.first_tone = asyncio.Event()
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None

    def listen(self, initial_silence_seconds: float) -> None:
        if not self.first_tone.is_set():
            self._arm(initial_silence_seconds, Outcome.INITIAL_SILENCE)

    def add(self, tone: str) -> None:
        if self.outcome.done():
            return
        self.first_tone.set()
        if tone in self.stop_tones:
            self._finish(Outcome.STOP_TONE)
            return
        self.tones.append(tone)
        if len(self.tones) >= self.max_tones:
            self._finish(Outcome.MAX_TONES)
        else:
            self._arm(self.inter_tone_seconds, Outcome.INTER_TONE_SILENCE)

    def _arm(self, seconds: float, outcome: Outcome) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._finish, outcome)

    def _finish(self, outcome: Outcome) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
