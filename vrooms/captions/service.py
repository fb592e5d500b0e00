"""Live captions and transcription in the call host (``calls.captioning``'s ``Captioner`` and
``Transcripts``): the engine's worker pool, and each call's live text (``captions.call_text``).

A call's live text runs while anyone listens in a language: its participants while its captions
are on (every caption to every participant as ``captionsReceived``, in the call's language:
``setSpokenLanguage`` applies to everyone, as in ACS), a Call Automation transcription (in its
own locale). The worker processes start with the first call's live text and stop with the last:
no engine runs, and no process waits, while nothing is captioned.
"""

from __future__ import annotations

import asyncio
import logging
import time

from vrooms.api.times import format_rfc3339
from vrooms.calls import protocol
from vrooms.calls.call import Call, Participant
from vrooms.calls.captioning import LIVE_TEXT, CaptionSink, LiveTextUnavailable
from vrooms.calls.interface import RoomCalls
from vrooms.captions.call_text import CallText, Listener, SpeakerBudget
from vrooms.captions.engines import EngineChoice, load
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.media.types import MediaError
from vrooms.speech import Caption
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.captions")

_CAPTIONS = "captions"  # the participants' listener


class CaptionsService:
    def __init__(self, calls: RoomCalls, choice: EngineChoice, workers: int, max_speakers: int) -> None:
        self.calls = calls
        self.choice = choice
        self.workers = workers
        self.budget = SpeakerBudget(max_speakers)
        engine = load(choice)  # cheap: its name and languages (models load in the workers)
        self._engine, self._languages = engine.name, engine.languages()
        self._pool: RecognizerPool | None = None
        # One change of one call's live text at a time (start, stop and relanguage are rare).
        self._applying = asyncio.Lock()
        self._listeners: dict[str, dict[str, Listener]] = {}  # call id -> key -> listener
        self._calls: dict[str, CallText] = {}
        self._tasks = TaskSet(log)

    @property
    def engine(self) -> str:
        return self._engine

    def languages(self) -> list[str]:
        return list(self._languages)

    # -- who listens ----------------------------------------------------------------------

    async def apply(self, call: Call) -> None:
        sink = None if call.ended or not call.captions["active"] else self._broadcast
        language = str(call.captions["language"])
        async with self._applying:
            try:
                await self._set(call, _CAPTIONS, language, sink)
            except LiveTextUnavailable as exc:
                log.warning("captions of call %s wait: %s", call.id, exc)

    async def listen(self, call: Call, key: str, language: str | None, sink: CaptionSink) -> None:
        async with self._applying:
            await self._set(call, key, language, sink)

    async def unlisten(self, call: Call, key: str) -> None:
        async with self._applying:
            await self._set(call, key, None, None)

    async def _set(self, call: Call, key: str, language: str | None, sink: CaptionSink | None) -> None:
        listeners = self._listeners.setdefault(call.id, {})
        if sink is None:
            listeners.pop(key, None)
        else:
            listeners[key] = Listener(language, sink)
        if call.ended:
            listeners.clear()
        try:
            await self._reconcile(call, listeners)
        except LiveTextUnavailable:
            listeners.pop(key, None)
            raise
        finally:
            if not listeners:
                self._listeners.pop(call.id, None)

    async def _reconcile(self, call: Call, listeners: dict[str, Listener]) -> None:
        """Run the call's live text while anyone listens in a language; stop it otherwise."""
        running = self._calls.get(call.id)
        if running is not None:
            running.listeners = listeners
            if running.languages:
                await running.retune()
                return
            del self._calls[call.id]
            await running.stop()
            call.give_back_speakers_apart(LIVE_TEXT)
            self._refused(call, frozenset())
            if not self._calls and self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            return
        if any(listener.language for listener in listeners.values()):
            await self._start(call, listeners)

    async def _start(self, call: Call, listeners: dict[str, Listener]) -> None:
        holder = call.take_speakers_apart(LIVE_TEXT)
        if holder is not None:
            raise LiveTextUnavailable(f"the call's {holder} has its speakers apart")
        try:
            if self._pool is None:
                pool = RecognizerPool(self.choice, self.workers)
                await pool.start()
                self._pool = pool
            text = CallText(self.calls, self._pool, self.budget, call, self._refused)
            text.listeners = listeners
            self._calls[call.id] = text
            await text.start()
        except (MediaError, RecognitionFailed) as exc:
            log.warning("live text of call %s could not start: %s", call.id, exc)
            self._calls.pop(call.id, None)
            call.give_back_speakers_apart(LIVE_TEXT)
            raise LiveTextUnavailable(str(exc)) from None

    # -- what participants see ----------------------------------------------------------------

    @staticmethod
    def _broadcast(caption: Caption, speaker: Participant) -> None:
        speaker.call.broadcast(
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

    @staticmethod
    def _refused(call: Call, participant_ids: frozenset[str]) -> None:
        """The call's captions state names the speakers the node's limit leaves uncaptioned."""
        if set(call.captions.get("uncaptioned", ())) == participant_ids:
            return
        call.captions["uncaptioned"] = sorted(participant_ids)
        if not call.ended:
            call.broadcast(protocol.captions(call.captions, ""))

    # -- who is in the call ---------------------------------------------------------------

    def joined(self, call: Call, participant: Participant) -> None:
        if (text := self._calls.get(call.id)) is not None:
            text.joined(participant.id)

    def left(self, call: Call, participant: Participant) -> None:
        if (text := self._calls.get(call.id)) is not None:
            self._tasks.spawn(text.left(participant.id))

    def talking(self, call: Call, participant: Participant) -> None:
        if (text := self._calls.get(call.id)) is not None:
            text.talking(participant.id)

    async def shutdown(self) -> None:
        for text in list(self._calls.values()):
            await text.stop()
        self._calls.clear()
        await self._tasks.cancel_all()
        if self._pool is not None:
            self._pool.shutdown()
