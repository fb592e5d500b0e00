"""Speech engines in worker processes: decoding never runs in the call host's event loop.

``RecognizerPool`` keeps ``size`` worker processes (spawned, not forked: the call host runs
threads), each loading the engine once. A speaker's stream is pinned to one worker, the one
with the fewest streams when it opens, because its recognizer's state lives there; a worker is
a one-process executor, so a stream's audio is decoded in the order it was sent. A worker that
dies (killed, out of memory) or hangs (no answer within ``HUNG_SECONDS``: it is killed then)
fails its streams' requests with ``RecognitionFailed`` and is started again for the next
stream. Workers die with the call host (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from vrooms.captions.engines import Engine, EngineChoice, Hypothesis, Recognizer, load

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
# A chunk decodes in tens of milliseconds: a worker silent this long is hung, not busy.
HUNG_SECONDS = 10.0
# Loading an engine, or opening a recognizer (a large model is read then), may take this long.
LOADING_SECONDS = 120.0


class RecognitionFailed(Exception):
    """The worker decoding this stream is gone (its captions stop; new streams get a new worker)."""


# -- inside a worker process -------------------------------------------------------------------

_engine: Engine | None = None
_streams: dict[str, Recognizer] = {}


def _start_worker(choice: EngineChoice) -> None:
    global _engine
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _engine = load(choice)


def _describe() -> tuple[str, list[str]]:
    assert _engine is not None
    return _engine.name, _engine.languages()


def _open(stream_id: str, language: str) -> None:
    assert _engine is not None
    _streams[stream_id] = _engine.recognizer(language)


def _accept(stream_id: str, pcm: bytes) -> Hypothesis | None:
    return _streams[stream_id].accept(pcm)


def _end(stream_id: str) -> Hypothesis:
    return _streams[stream_id].end()


def _close(stream_id: str) -> None:
    _streams.pop(stream_id, None)


# -- in the call host ------------------------------------------------------------------------------


class _Worker:
    def __init__(self, choice: EngineChoice) -> None:
        self.executor = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(choice,)
        )
        self.streams: set[str] = set()
        self.broken = False
        self.pid: int | None = None

    async def run(self, function: Any, *args: Any, limit: float | None = None) -> Any:
        """``function`` in the worker; one that does not answer within ``limit`` (default
        ``HUNG_SECONDS``) is hung (stopped, deadlocked): it is killed, its streams fail."""
        loop = asyncio.get_running_loop()
        try:
            if self.pid is None:  # its first task: the engine loads before it can answer
                self.pid = await asyncio.wait_for(loop.run_in_executor(self.executor, os.getpid), LOADING_SECONDS)
            return await asyncio.wait_for(loop.run_in_executor(self.executor, function, *args), limit or HUNG_SECONDS)
        except BrokenProcessPool:
            self.broken = True
            raise RecognitionFailed("the captions worker stopped") from None
        except TimeoutError:
            self.broken = True
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            raise RecognitionFailed("the captions worker did not answer in time; it was stopped") from None


class RecognizerPool:
    def __init__(self, choice: EngineChoice, size: int) -> None:
        self.choice = choice
        self.size = size
        self._workers: list[_Worker] = []
        self._of_stream: dict[str, _Worker] = {}
        self.engine_name = ""
        self.supported: list[str] = []
        # Chunks decoded since start (silence never reaches a worker: see ``captions.utterances``).
        self.chunks_decoded = 0

    async def start(self) -> None:
        """Start the workers and learn the engine's name and languages (a worker's first task)."""
        self._workers = [_Worker(self.choice) for _ in range(self.size)]
        described = await asyncio.gather(*(worker.run(_describe, limit=LOADING_SECONDS) for worker in self._workers))
        self.engine_name, self.supported = described[0]

    def _replace_broken(self) -> None:
        for index, worker in enumerate(self._workers):
            if worker.broken:
                worker.executor.shutdown(wait=False, cancel_futures=True)
                self._workers[index] = _Worker(self.choice)

    async def open(self, stream_id: str, language: str) -> None:
        """A recognizer for a speaker; raises ``UnsupportedLanguage`` (from the worker, as is)."""
        self._replace_broken()
        worker = min(self._workers, key=lambda w: len(w.streams))
        await worker.run(_open, stream_id, language, limit=LOADING_SECONDS)
        worker.streams.add(stream_id)
        self._of_stream[stream_id] = worker

    def _worker(self, stream_id: str) -> _Worker:
        worker = self._of_stream.get(stream_id)
        if worker is None or worker.broken:
            raise RecognitionFailed(f"no recognizer for stream {stream_id}")
        return worker

    async def accept(self, stream_id: str, pcm: bytes) -> Hypothesis | None:
        self.chunks_decoded += 1
        hypothesis: Hypothesis | None = await self._worker(stream_id).run(_accept, stream_id, pcm)
        return hypothesis

    async def end(self, stream_id: str) -> Hypothesis:
        hypothesis: Hypothesis = await self._worker(stream_id).run(_end, stream_id)
        return hypothesis

    async def close(self, stream_id: str) -> None:
        worker = self._of_stream.pop(stream_id, None)
        if worker is not None and not worker.broken:
            worker.streams.discard(stream_id)
            await worker.run(_close, stream_id)

    def shutdown(self) -> None:
        for worker in self._workers:
            worker.executor.shutdown(wait=False, cancel_futures=True)
        self._workers = []
