"""A call connection's media operations: prompts (play), DTMF recognition and DTMF sending.

Play and recognize requests queue per connection and run one at a time (``MediaQueue``), as
ACS runs them; each ends in exactly one callback: Completed, Failed or Canceled. A prompt is
played to everyone (the AudioBridge mix), to phones (rtpengine) or to chosen WebRTC
participants (an audio feed only they receive); whatever holds it (a Janus feed, an ffmpeg
sender, rtpengine's player) is released when the operation ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any

from vrooms.automation.connection import Connection
from vrooms.automation.media import DtmfCollector, MediaOperation
from vrooms.automation.media_schemas import PlayRequest, PlaySource, RecognizeRequest
from vrooms.automation.participants import ParticipantOperations
from vrooms.automation.prompts import Clip, PromptError, PromptRenderer, Source, espeak_voice, send_rtp
from vrooms.automation.schemas import TONE_NAMES, DtmfRequest, TargetRequest
from vrooms.callbacks import results
from vrooms.calls.call import Call, Participant
from vrooms.calls.interface import RoomCalls
from vrooms.calls.models import CallRefused
from vrooms.errors import ApiError, bad_argument
from vrooms.events.models import EventType
from vrooms.media.types import MediaError
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.automation")


class MediaOperations:
    def __init__(self, calls: RoomCalls, prompts: PromptRenderer, tasks: TaskSet) -> None:
        self.calls = calls
        self.prompts = prompts
        self._tasks = tasks

    def _phone(self, connection: Connection, raw_id: str) -> Participant:
        target = ParticipantOperations.in_call_of(connection.call, raw_id)
        if target.phone_number is None:
            raise ApiError(400, "BadRequest", "DTMF works with phone participants only.", "targetParticipant")
        return target

    async def send_dtmf(self, connection: Connection, request: DtmfRequest) -> None:
        target = self._phone(connection, request.raw_id)
        telephony = self.calls.telephony
        assert telephony is not None  # a phone participant exists only with a trunk
        self._tasks.spawn(self._send_tones(connection, target, request, telephony))

    @staticmethod
    async def _send_tones(connection: Connection, target: Participant, request: DtmfRequest, telephony: Any) -> None:
        try:
            await telephony.send_tones(target, request.tones)
        except Exception as exc:
            log.warning("sending DTMF for call connection %s failed: %s", connection.id, exc)
            connection.emit(
                EventType.SEND_DTMF_TONES_FAILED,
                request.operation_context,
                resultInformation=results.TELEPHONY_FAILED.wire(),
            )
            return
        connection.emit(
            EventType.SEND_DTMF_TONES_COMPLETED, request.operation_context, resultInformation=results.OK.wire()
        )

    def start_dtmf(self, connection: Connection, request: TargetRequest) -> None:
        target = self._phone(connection, request.raw_id)
        connection.dtmf.setdefault(target.id, [request.operation_context, 0])[0] = request.operation_context

    def stop_dtmf(self, connection: Connection, request: TargetRequest) -> None:
        target = self._phone(connection, request.raw_id)
        if connection.dtmf.pop(target.id, None) is not None:
            connection.emit(
                EventType.CONTINUOUS_DTMF_STOPPED, request.operation_context, resultInformation=results.OK.wire()
            )

    async def _sources(self, sources: list[PlaySource], field: str) -> list[Source]:
        """Checked now (a URL that may never be fetched is the request's 400), rendered later."""
        voices = await self._voices() if any(s.kind == "text" for s in sources) else set()
        for n, source in enumerate(sources):
            if source.kind == "file":
                try:
                    await self.prompts.check_file_uri(source.value)
                except PromptError as exc:
                    raise bad_argument(str(exc), f"{field}[{n}].file.uri") from None
        return [Source(s.kind, s.value, espeak_voice(s.locale, s.voice_kind, voices)) for s in sources]

    async def _voices(self) -> set[str]:
        try:
            return await self.prompts.voices()
        except PromptError:
            return set()  # no espeak-ng: rendering fails, and says so in PlayFailed

    async def play(self, connection: Connection, request: PlayRequest) -> None:
        targets = [ParticipantOperations.in_call(connection, raw) for raw in request.targets]
        sources = await self._sources(request.sources, "playSources")
        context = request.operation_context
        work = partial(self._play, connection, sources, targets, request.loop, context)
        operation = _reported(connection, context, work, EventType.PLAY_CANCELED, EventType.PLAY_FAILED)
        connection.media.submit(operation, interrupt=request.interrupt)

    async def _play(
        self, connection: Connection, sources: list[Source], targets: list[Participant], loop: bool, context: Any
    ) -> None:
        try:
            async with self.prompts.clip(sources) as clip, contextlib.AsyncExitStack() as playing:
                senders = await self._start(playing, connection.call, clip, targets, loop=loop)
                connection.emit(EventType.PLAY_STARTED, context, **results.information(results.OK))
                await self._play_out(clip, targets, senders, loop=loop)
        except PromptError as exc:
            failed = results.FILE_NOT_DOWNLOADED if exc.download else results.FILE_INVALID
            connection.emit(EventType.PLAY_FAILED, context, **results.information(failed, str(exc)))
            return
        except (MediaError, CallRefused) as exc:
            log.warning("a prompt could not be played: %s", exc)
            connection.emit(EventType.PLAY_FAILED, context, **results.information(results.PLAY_MEDIA_FAILED))
            return
        connection.emit(EventType.PLAY_COMPLETED, context, **results.information(results.PLAYED))

    async def _start(
        self, playing: contextlib.AsyncExitStack, call: Call, clip: Clip, targets: list[Participant], *, loop: bool
    ) -> list[asyncio.Future[None]]:
        """Start the clip, to stop when ``playing`` closes: to everyone (the AudioBridge's mix), or to
        the targets alone (phones: rtpengine; WebRTC participants: an audio feed only they receive).
        Returns the feed's sender, which ends when it has sent the clip."""
        if not targets:
            await playing.enter_async_context(self._in_mix(call, clip, loop=loop))
            return []
        phones = [t for t in targets if t.phone_number is not None]
        if phones:
            await playing.enter_async_context(self._to_phones(phones, clip))
        audience = [t for t in targets if t.phone_number is None]
        if not audience:
            return []
        address = await playing.enter_async_context(self.calls.audio_feed(call, audience))
        sender = asyncio.ensure_future(send_rtp(clip, address, loop=loop))
        playing.push_async_callback(_cancel, sender)
        return [sender]

    @contextlib.asynccontextmanager
    async def _in_mix(self, call: Call, clip: Clip, *, loop: bool) -> AsyncIterator[None]:
        plane = self.calls.media_plane()
        file_id = await plane.play_file(call.media, clip.opus, loop=loop)
        try:
            yield
        finally:
            with contextlib.suppress(MediaError):
                await plane.stop_file(call.media, file_id)

    @contextlib.asynccontextmanager
    async def _to_phones(self, phones: list[Participant], clip: Clip) -> AsyncIterator[None]:
        telephony = self.calls.telephony
        assert telephony is not None  # phone participants exist only with a trunk
        try:
            for phone in phones:
                await telephony.play_to(phone, clip.wav)
            yield
        finally:
            for phone in phones:
                await telephony.stop_playing(phone)

    async def _play_out(
        self, clip: Clip, targets: list[Participant], senders: list[asyncio.Future[None]], *, loop: bool
    ) -> None:
        """Wait while the clip plays (and a feed's sender has sent it all); a loop plays until
        cancelled (rtpengine is told again each time; the sender loops by itself)."""
        await asyncio.gather(asyncio.sleep(clip.seconds), *([] if loop else senders))
        phones = [t for t in targets if t.phone_number is not None]
        while loop:
            if phones and self.calls.telephony is not None:
                for phone in phones:
                    await self.calls.telephony.play_to(phone, clip.wav)
            await asyncio.sleep(clip.seconds)

    def cancel_media(self, connection: Connection) -> None:
        connection.media.cancel_all()

    async def recognize(self, connection: Connection, request: RecognizeRequest) -> None:
        target = self._phone(connection, request.raw_id)
        prompt = await self._sources(request.prompt, "playPrompts")
        context = request.operation_context
        work = partial(self._recognize, connection, target, prompt, request)
        operation = _reported(connection, context, work, EventType.RECOGNIZE_CANCELED, EventType.RECOGNIZE_FAILED)
        connection.media.submit(operation, interrupt=request.interrupt)

    async def _recognize(
        self, connection: Connection, target: Participant, prompt: list[Source], request: RecognizeRequest
    ) -> None:
        collector = DtmfCollector(
            max_tones=request.max_tones, stop_tones=request.stop_tones, inter_tone_seconds=request.inter_tone_seconds
        )
        connection.collectors[target.id] = collector
        try:
            if prompt:
                await self._prompt(target, prompt, collector, barge_in=request.interrupt_prompt)
            collector.listen(request.initial_silence_seconds)
            outcome = await collector.outcome
        except PromptError as exc:
            failed = results.FILE_NOT_DOWNLOADED if exc.download else results.FILE_INVALID
            connection.emit(
                EventType.RECOGNIZE_FAILED, request.operation_context, **results.information(failed, str(exc))
            )
            return
        finally:
            collector.close()
            connection.collectors.pop(target.id, None)
        result = results.RECOGNIZED[outcome]
        if not result.ok:
            connection.emit(EventType.RECOGNIZE_FAILED, request.operation_context, **results.information(result))
            return
        tones = [TONE_NAMES[t] for t in collector.tones]
        connection.emit(
            EventType.RECOGNIZE_COMPLETED,
            request.operation_context,
            recognitionType="dtmf",
            dtmfResult={"tones": tones},
            **results.information(result),
        )

    async def _prompt(
        self, target: Participant, prompt: list[Source], collector: DtmfCollector, *, barge_in: bool
    ) -> None:
        """Play the recognize prompt to the phone; with barge-in the first digit stops it."""
        telephony = self.calls.telephony
        assert telephony is not None
        async with self.prompts.clip(prompt) as clip:
            await telephony.play_to(target, clip.wav)
            played = asyncio.ensure_future(asyncio.sleep(clip.seconds))
            keyed = asyncio.ensure_future(collector.first_tone.wait())
            try:
                await asyncio.wait([played, *([keyed] if barge_in else [])], return_when=asyncio.FIRST_COMPLETED)
            finally:
                played.cancel()
                keyed.cancel()
                await telephony.stop_playing(target)


async def _cancel(task: asyncio.Future[None]) -> None:
    """Stop a sender and wait until its process is gone; how it ended is already reported, or moot."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, PromptError):
        await task


def _reported(
    connection: Connection,
    context: str | None,
    work: Callable[[], Coroutine[Any, Any, None]],
    cancelled: EventType,
    failed: EventType,
) -> MediaOperation:
    """``work`` queued with the callbacks that end it if it does not report itself."""
    return MediaOperation(
        work=work,
        cancelled=partial(connection.emit, cancelled, context, **results.information(results.MEDIA_CANCELLED)),
        failed=partial(connection.emit, failed, context, **results.information(results.MEDIA_OPERATION_FAILED)),
    )
