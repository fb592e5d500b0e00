"""One speaker's audio in, captions out: utterances cut by the VAD, decoded in a worker.

Frames (20 ms of 16 kHz mono) are pushed without waiting; a task cuts them into utterances
(``captions.utterances``) and sends each utterance's audio to the speaker's recognizer in
``CHUNK_SECONDS`` pieces, handing on every new partial hypothesis and the final one. If the
engine falls behind by more than ``_BACKLOG_SECONDS`` of audio, the oldest frames are dropped
(and counted): captions come late or miss a word, memory does not grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from vrooms.captions.engines import Hypothesis
from vrooms.captions.utterances import FRAME_BYTES, FRAME_SECONDS, Ended, Speech, Utterances
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.speech import Caption

log = logging.getLogger("vrooms.captions")

CHUNK_SECONDS = 0.2
_CHUNK_BYTES = int(CHUNK_SECONDS / FRAME_SECONDS) * FRAME_BYTES
_BACKLOG_SECONDS = 10.0


class SpeakerTranscriber:
    def __init__(
        self, pool: RecognizerPool, speaker: str, language: str, on_caption: Callable[[Caption], None]
    ) -> None:
        self.pool = pool
        self.speaker = speaker
        self.language = language
        self.on_caption = on_caption
        self.stream_id = f"{speaker}/{id(self):x}"
        self.dropped_frames = 0
        self._frames: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=int(_BACKLOG_SECONDS / FRAME_SECONDS))
        self._task: asyncio.Task[None] | None = None
        self._heard = 0  # frames taken from the queue
        self._started_at = 0  # the current utterance's first frame
        self._began_at = 0.0  # and when it was pushed (seconds since the epoch)
        self._speaking = False
        self._last_speech = time.monotonic()

    async def start(self) -> None:
        """Raises ``UnsupportedLanguage`` (the pool's workers know the models)."""
        await self.pool.open(self.stream_id, self.language)
        self._task = asyncio.create_task(self._run(), name=f"captions {self.speaker}")

    @property
    def backlog_seconds(self) -> float:
        """Audio pushed and not yet decoded (the engine falling behind shows here first)."""
        return self._frames.qsize() * FRAME_SECONDS

    @property
    def running(self) -> bool:
        """False once its worker failed (a new transcriber takes the speaker's next words)."""
        return self._task is not None and not self._task.done()

    @property
    def idle_seconds(self) -> float:
        """Seconds since the speaker's last utterance ended (0 while one is under way)."""
        if self._speaking or self._frames.qsize():
            return 0.0
        return time.monotonic() - self._last_speech

    def push(self, frame: bytes) -> None:
        if self._frames.full():
            self._frames.get_nowait()
            self._frames.task_done()  # else ``close`` waits for it forever
            self.dropped_frames += 1
        self._frames.put_nowait((time.time(), frame))

    async def close(self) -> None:
        """Stop: the utterance under way is finished (its final caption is handed on)."""
        if self._task is not None:
            # Until every frame pushed is decoded, or the task ended (a failed worker drains nothing).
            drained = asyncio.ensure_future(self._frames.join())
            await asyncio.wait({drained, self._task}, return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RecognitionFailed):
            await self.pool.close(self.stream_id)

    async def _run(self) -> None:
        utterances = Utterances()
        pending = b""
        try:
            while True:
                pushed_at, frame = await self._frames.get()
                try:
                    for event in utterances.push(frame):
                        pending = await self._handle(event, pending, pushed_at)
                    self._speaking = utterances.speaking
                    if self._speaking:
                        self._last_speech = time.monotonic()
                    self._heard += 1
                finally:
                    self._frames.task_done()
        except asyncio.CancelledError:
            if utterances.speaking:
                await asyncio.shield(self._finish(pending))
            raise
        except RecognitionFailed as failed:
            log.warning("captions of %s stopped: %s", self.speaker, failed)

    async def _handle(self, event: Speech | Ended, pending: bytes, pushed_at: float) -> bytes:
        if isinstance(event, Ended):
            await self._finish(pending)
            return b""
        if event.started:  # the VAD hands on the frames that started it at once
            frames_before = len(event.pcm) // FRAME_BYTES - 1
            self._started_at = self._heard - frames_before
            self._began_at = pushed_at - frames_before * FRAME_SECONDS
        pending += event.pcm
        if len(pending) >= _CHUNK_BYTES:
            self._emit(await self.pool.accept(self.stream_id, pending))
            return b""
        return pending

    async def _finish(self, pending: bytes) -> None:
        if pending:
            self._emit(await self.pool.accept(self.stream_id, pending))
        final = await self.pool.end(self.stream_id)
        if final.text:
            self._emit(final)

    def _emit(self, hypothesis: Hypothesis | None) -> None:
        if hypothesis is None:
            return
        offset = self._started_at * FRAME_SECONDS
        duration = (self._heard + 1 - self._started_at) * FRAME_SECONDS
        self.on_caption(
            Caption(
                self.speaker,
                hypothesis.text,
                hypothesis.final,
                self.language,
                offset,
                duration,
                hypothesis.words,
                hypothesis.confidence,
                self._began_at,
            )
        )
