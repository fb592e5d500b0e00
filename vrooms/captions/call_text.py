"""One call's live text: its speakers apart, a transcriber per speaker and language, and who hears it.

While anyone listens in a language (the participants' captions, a Call Automation
transcription), the call's dominant speakers' audio comes apart at 16 kHz
(``media.speakers.SpeakersApart``: up to ``ISOLATED_SLOTS`` at once, whoever is heard taking
the slot of the one silent longest; phones included, as they are in the mix). Each speaker
heard gets a transcriber per language listened in, opened at their first frame; every caption
goes to the listeners of its language and to those that hear any (a recording's transcript).
A transcriber counts against the node's ``SpeakerBudget``: a speaker beyond it is not captioned
(and the call's captions state names them) until a place frees up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from vrooms.calls.call import Call
from vrooms.calls.captioning import CaptionSink
from vrooms.calls.interface import RoomCalls
from vrooms.captions.engines import SAMPLE_RATE, UnsupportedLanguage
from vrooms.captions.transcriber import SpeakerTranscriber
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.media.speakers import SpeakersApart
from vrooms.media.types import MediaError
from vrooms.speech import Caption

log = logging.getLogger("vrooms.captions")

_Key = tuple[str, str]  # participant id, language


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
        self._refused: set[str] = set()
        self._apart: SpeakersApart | None = None
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
        for participant in self.call.participants.values():
            apart.joined(participant.id)

    async def _frame(self, participant_id: str, pcm: bytes) -> bool:
        for language in self.languages:
            key = (participant_id, language)
            transcriber = self._transcribers.get(key) or await self._open(key)
            if transcriber is not None:
                transcriber.push(pcm)
        return True

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
            self._refused.add(participant_id)
        else:
            self._refused.discard(participant_id)
        if before != self._refused:
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
        for key in [key for key in self._transcribers if key[0] == participant_id]:
            await self._close(self._transcribers.pop(key))

    async def stop(self) -> None:
        self._stopped = True
        if self._apart is not None:
            apart, self._apart = self._apart, None
            with contextlib.suppress(MediaError):
                await apart.stop()
        transcribers, self._transcribers = list(self._transcribers.values()), {}
        for transcriber in transcribers:
            await self._close(transcriber)
