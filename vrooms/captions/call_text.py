"""One call's live text: its speakers apart, a transcriber per speaker and language, and who hears it.

While anyone listens in a language (the participants' captions, a Call Automation
transcription), the call's dominant speakers' audio comes apart at 16 kHz
(``media.speakers.SpeakersApart``: up to ``ISOLATED_SLOTS`` at once, whoever is heard taking
the slot of the one silent longest; phones included, as they are in the mix). Each speaker
heard speaking (WebRTC's VAD, as in ``captions.utterances``: not one merely in the call) gets a
transcriber per language listened in; every caption goes to the listeners of its language and
to those that hear any (a recording's transcript). A transcriber counts against the node's
``SpeakerBudget`` until its speaker has been silent for ``IDLE_SECONDS``: a speaker beyond it
is not captioned (and the call's captions state names them) until a place frees up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from vrooms.calls.call import Call
from vrooms.calls.captioning import CaptionSink
from vrooms.calls.interface import RoomCalls
from vrooms.captions.engines import SAMPLE_RATE, UnsupportedLanguage
from vrooms.captions.transcriber import SpeakerTranscriber
from vrooms.captions.utterances import FRAME_BYTES, Speech, Utterances
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.media.speakers import SpeakersApart
from vrooms.media.types import MediaError
from vrooms.speech import Caption

log = logging.getLogger("vrooms.captions")

_Key = tuple[str, str]  # participant id, language
# A transcriber whose speaker said nothing for this long is closed (its place in the budget freed).
IDLE_SECONDS = 10.0
_SWEEP_SECONDS = 2.0


@dataclass(frozen=True)
class Listener:
    language: str | None  # None: hears whatever runs for others
    sink: CaptionSink


class SpeakerBudget:
    """The node's limit of speakers recognized at once (one per speaker and language)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


class CallText:
    def __init__(
        self,
        calls: RoomCalls,
        pool: RecognizerPool,
        budget: SpeakerBudget,
        call: Call,
        on_refused: Callable[[Call, frozenset[str]], None],
    ) -> None:
        """``on_refused(call, participant_ids)``: who is not captioned now (the budget is spent)."""
        self.calls = calls
        self.pool = pool
        self.budget = budget
        self.call = call
        self.on_refused = on_refused
        self.listeners: dict[str, Listener] = {}
        self._transcribers: dict[_Key, SpeakerTranscriber] = {}
        self._opening: dict[_Key, asyncio.Task[SpeakerTranscriber | None]] = {}
        self._refused: dict[str, float] = {}  # participant id -> when last refused (monotonic)
        self._gates: dict[str, Utterances] = {}  # who is not transcribed yet: until heard speaking
        self._apart: SpeakersApart | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(listener.language for listener in self.listeners.values() if listener.language)

    async def start(self) -> None:
        apart = SpeakersApart(
            self.calls.media_plane(),
            self.call.media,
            SAMPLE_RATE,
            isolate=partial(self.calls.isolate, self.call),
            sink=self._frame,
            on_stopped=lambda why: log.warning("live text of call %s stopped: %s", self.call.id, why),
        )
        await apart.start()
        self._apart = apart
        self._sweeper = asyncio.create_task(self._sweep(), name=f"captions sweep {self.call.id}")
        for participant in self.call.participants.values():
            apart.joined(participant.id)

    async def _frame(self, participant_id: str, pcm: bytes) -> bool:
        missing = []
        for language in self.languages:
            transcriber = self._transcribers.get((participant_id, language))
            if transcriber is not None and not transcriber.running:  # its worker failed
                await self._close(self._transcribers.pop((participant_id, language)))
                transcriber = None
            if transcriber is None:
                missing.append(language)
            else:
                transcriber.push(pcm)
        if missing and (heard := self._gate(participant_id, pcm)):
            for language in missing:
                transcriber = await self._open((participant_id, language))
                if transcriber is not None:
                    for start in range(0, len(heard), FRAME_BYTES):
                        transcriber.push(heard[start : start + FRAME_BYTES])
        return True

    def _gate(self, participant_id: str, pcm: bytes) -> bytes:
        """The frames that start the speaker's speech once they are heard (b"" until then)."""
        gate = self._gates.setdefault(participant_id, Utterances())
        for event in gate.push(pcm):
            if isinstance(event, Speech) and event.started:
                del self._gates[participant_id]
                return event.pcm
        return b""

    async def _sweep(self) -> None:
        """Transcribers of speakers silent for ``IDLE_SECONDS`` are closed; refusals that old expire."""
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            for key, transcriber in list(self._transcribers.items()):
                if transcriber.idle_seconds > IDLE_SECONDS and self._transcribers.get(key) is transcriber:
                    del self._transcribers[key]
                    await self._close(transcriber)
            now = time.monotonic()
            for participant_id in [p for p, at in self._refused.items() if now - at > IDLE_SECONDS]:
                self._refuse(participant_id, False)

    async def _open(self, key: _Key) -> SpeakerTranscriber | None:
        """The speaker's transcriber (one opening at a time per key; a decoder takes a moment)."""
        opening = self._opening.get(key)
        if opening is None:
            if not self.budget.take():
                self._refuse(key[0], True)
                return None
            opening = self._opening[key] = asyncio.ensure_future(self._new(key))
        try:
            return await asyncio.shield(opening)
        finally:
            self._opening.pop(key, None)

    async def _new(self, key: _Key) -> SpeakerTranscriber | None:
        participant_id, language = key
        transcriber = SpeakerTranscriber(self.pool, participant_id, language, self._send)
        try:
            await transcriber.start()
        except (RecognitionFailed, UnsupportedLanguage) as exc:
            log.warning("no captions for %s: %s", participant_id, exc)
            self.budget.give()
            return None
        if self._stopped or participant_id not in self.call.participants or language not in self.languages:
            await self._close(transcriber)  # gone meanwhile
            return None
        self._transcribers[key] = transcriber
        self._refuse(participant_id, False)
        return transcriber

    def _refuse(self, participant_id: str, refused: bool) -> None:
        before = frozenset(self._refused)
        if refused:
            self._refused[participant_id] = time.monotonic()
        else:
            self._refused.pop(participant_id, None)
        if before != frozenset(self._refused):
            self.on_refused(self.call, frozenset(self._refused))

    def _send(self, caption: Caption) -> None:
        speaker = self.call.participants.get(caption.speaker)
        if speaker is None or self.call.ended:
            return
        for listener in list(self.listeners.values()):
            if listener.language in (None, caption.language):
                listener.sink(caption, speaker)

    async def _close(self, transcriber: SpeakerTranscriber) -> None:
        try:
            await transcriber.close()
        finally:
            self.budget.give()

    async def retune(self) -> None:
        """Listeners changed: transcribers of a language nobody listens in any more are closed."""
        wanted = self.languages
        for key in [key for key in self._transcribers if key[1] not in wanted]:
            await self._close(self._transcribers.pop(key))

    # -- who is in the call ---------------------------------------------------------------

    def joined(self, participant_id: str) -> None:
        if self._apart is not None:
            self._apart.joined(participant_id)

    def talking(self, participant_id: str) -> None:
        if self._apart is not None:
            self._apart.talking(participant_id)

    async def left(self, participant_id: str) -> None:
        if self._apart is not None:
            self._apart.left(participant_id)
        self._refuse(participant_id, False)
        self._gates.pop(participant_id, None)
        for key in [key for key in self._transcribers if key[0] == participant_id]:
            await self._close(self._transcribers.pop(key))

    async def stop(self) -> None:
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._apart is not None:
            apart, self._apart = self._apart, None
            with contextlib.suppress(MediaError):
                await apart.stop()
        transcribers, self._transcribers = list(self._transcribers.values()), {}
        for transcriber in transcribers:
            await self._close(transcriber)
