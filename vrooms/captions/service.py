"""Live captions in room calls (``calls.captioning.Captioner``): who said what, to everyone.

While a call's captions are on, its dominant speakers' audio comes apart at 16 kHz
(``media.speakers.SpeakersApart``: up to ``ISOLATED_SLOTS`` at once, whoever is heard taking
the slot of the one silent longest; phones included, as they are in the mix), each speaker's
audio goes to a transcriber of their own, and every partial and final hypothesis goes to every
participant as ``captionsReceived``. The language is the call's (``setSpokenLanguage`` applies
to everyone, as in ACS). The engines run in worker processes, started with the first captions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

from vrooms.api.times import format_rfc3339
from vrooms.calls import protocol
from vrooms.calls.call import Call, Participant
from vrooms.calls.interface import RoomCalls
from vrooms.captions.engines import SAMPLE_RATE, EngineChoice, UnsupportedLanguage, load
from vrooms.captions.transcriber import Caption, SpeakerTranscriber
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.media.speakers import SpeakersApart
from vrooms.media.types import MediaError
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.captions")

_APART = "captions"


class CallCaptions:
    """One call's captions: its speakers apart, a transcriber per speaker heard."""

    def __init__(self, calls: RoomCalls, pool: RecognizerPool, call: Call, language: str) -> None:
        self.calls = calls
        self.pool = pool
        self.call = call
        self.language = language
        self._transcribers: dict[str, SpeakerTranscriber] = {}
        self._opening: dict[str, asyncio.Task[SpeakerTranscriber | None]] = {}
        self._apart: SpeakersApart | None = None
        self._stopped = False

    async def start(self) -> None:
        apart = SpeakersApart(
            self.calls.media_plane(),
            self.call.media,
            SAMPLE_RATE,
            isolate=partial(self.calls.isolate, self.call),
            sink=self._frame,
            on_stopped=lambda why: log.warning("captions of call %s stopped: %s", self.call.id, why),
        )
        await apart.start()
        self._apart = apart
        for participant in self.call.participants.values():
            apart.joined(participant.id)

    async def _frame(self, participant_id: str, pcm: bytes) -> bool:
        transcriber = self._transcribers.get(participant_id)
        if transcriber is None:
            transcriber = await self._open(participant_id)
        if transcriber is not None:
            transcriber.push(pcm)
        return True

    async def _open(self, participant_id: str) -> SpeakerTranscriber | None:
        """The speaker's transcriber (one opening at a time per speaker; a decoder takes a moment)."""
        opening = self._opening.get(participant_id)
        if opening is None:
            opening = self._opening[participant_id] = asyncio.ensure_future(self._new(participant_id))
        try:
            return await asyncio.shield(opening)
        finally:
            self._opening.pop(participant_id, None)

    async def _new(self, participant_id: str) -> SpeakerTranscriber | None:
        transcriber = SpeakerTranscriber(self.pool, participant_id, self.language, self._send)
        try:
            await transcriber.start()
        except (RecognitionFailed, UnsupportedLanguage) as exc:
            log.warning("no captions for %s: %s", participant_id, exc)
            return None
        if self._stopped or participant_id not in self.call.participants:  # gone meanwhile
            await transcriber.close()
            return None
        self._transcribers[participant_id] = transcriber
        return transcriber

    def _send(self, caption: Caption) -> None:
        speaker = self.call.participants.get(caption.speaker)
        if speaker is None or self.call.ended:
            return
        self.call.broadcast(
            protocol.captions_received(
                speaker.id,
                speaker.user_id,
                speaker.display_name,
                caption.text,
                caption.language,
                final=caption.final,
                timestamp=format_rfc3339(int(time.time() * 1_000_000)),
            )
        )

    def joined(self, participant: Participant) -> None:
        if self._apart is not None:
            self._apart.joined(participant.id)

    def talking(self, participant: Participant) -> None:
        if self._apart is not None:
            self._apart.talking(participant.id)

    async def left(self, participant: Participant) -> None:
        if self._apart is not None:
            self._apart.left(participant.id)
        transcriber = self._transcribers.pop(participant.id, None)
        if transcriber is not None:
            await transcriber.close()

    async def stop(self) -> None:
        self._stopped = True
        if self._apart is not None:
            apart, self._apart = self._apart, None
            with contextlib.suppress(MediaError):
                await apart.stop()
        transcribers, self._transcribers = list(self._transcribers.values()), {}
        for transcriber in transcribers:
            await transcriber.close()


class CaptionsService:
    """The call host's captioner: the engine's worker pool and each captioned call."""

    def __init__(self, calls: RoomCalls, choice: EngineChoice, workers: int) -> None:
        self.calls = calls
        self.choice = choice
        self.workers = workers
        engine = load(choice)  # cheap: its name and languages (models load in the workers)
        self._engine, self._languages = engine.name, engine.languages()
        self._pool: RecognizerPool | None = None
        self._starting = asyncio.Lock()
        # One change of one call's captions at a time (start, stop and relanguage are rare).
        self._applying = asyncio.Lock()
        self._calls: dict[str, CallCaptions] = {}
        self._tasks = TaskSet(log)

    @property
    def engine(self) -> str:
        return self._engine

    def languages(self) -> list[str]:
        return list(self._languages)

    async def _ready_pool(self) -> RecognizerPool:
        async with self._starting:
            if self._pool is None:
                pool = RecognizerPool(self.choice, self.workers)
                await pool.start()
                self._pool = pool
            return self._pool

    async def apply(self, call: Call) -> None:
        async with self._applying:
            await self._apply(call)

    async def _apply(self, call: Call) -> None:
        running = self._calls.get(call.id)
        wanted = call.captions["active"] and not call.ended
        if running is not None and (not wanted or running.language != call.captions["language"]):
            del self._calls[call.id]
            await running.stop()
            call.give_back_speakers_apart(_APART)
            running = None
        if running is None and wanted:
            await self._start(call)

    async def _start(self, call: Call) -> None:
        holder = call.take_speakers_apart(_APART)
        if holder is not None:
            log.warning("captions of call %s wait: %s has its speakers apart", call.id, holder)
            return
        captions = CallCaptions(self.calls, await self._ready_pool(), call, call.captions["language"])
        self._calls[call.id] = captions
        try:
            await captions.start()
        except (MediaError, RecognitionFailed) as exc:
            log.warning("captions of call %s could not start: %s", call.id, exc)
            self._calls.pop(call.id, None)
            call.give_back_speakers_apart(_APART)

    def _of(self, call: Call) -> CallCaptions | None:
        return self._calls.get(call.id)

    def joined(self, call: Call, participant: Participant) -> None:
        if (captions := self._of(call)) is not None:
            captions.joined(participant)

    def left(self, call: Call, participant: Participant) -> None:
        if (captions := self._of(call)) is not None:
            self._tasks.spawn(captions.left(participant))

    def talking(self, call: Call, participant: Participant) -> None:
        if (captions := self._of(call)) is not None:
            captions.talking(participant)

    async def shutdown(self) -> None:
        for captions in list(self._calls.values()):
            await captions.stop()
        self._calls.clear()
        await self._tasks.cancel_all()
        if self._pool is not None:
            self._pool.shutdown()
