"""Call Automation in the call host: call connections and what an app may do through them.

The server acts above every role (an app may mute a Presenter), but not above the room:
a phone target needs the room's ``pstnDialOutEnabled``, checked under the call's lock
as a Presenter's dial-out is. Operations that finish later (an add, DTMF) answer at once
and report through the connection's callbacks, as ACS does.

Connecting to a room with no call starts it (the app is its first member, as a joiner
would be); the call then stays up while the app is connected, even with nobody in it,
and ends when the app hangs up and nobody is left, or when it terminates the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from vrooms.api.times import now_micros
from vrooms.auth.roles import Role
from vrooms.automation import callbacks, results
from vrooms.automation.connection import IN_CALL_STATES, Connection, PendingAdd
from vrooms.automation.media import DtmfCollector, MediaOperation
from vrooms.automation.prompts import Clip, PromptError, PromptRenderer, Source, espeak_voice, send_rtp
from vrooms.automation.schemas import (
    TONE_NAMES,
    AddRequest,
    AnswerRequest,
    CancelAddRequest,
    ConnectRequest,
    DtmfRequest,
    MoveRequest,
    PlayRequest,
    PlaySource,
    RecognizeRequest,
    StreamingOptions,
    TargetRequest,
    participant_to_wire,
)
from vrooms.automation.streaming import MediaStream, StreamingFailed
from vrooms.calls import moderation
from vrooms.calls.call import Call, Participant, Telephony
from vrooms.calls.models import EndReason, LeaveReason, ParticipantState, Refusal
from vrooms.calls.rules import CallRefused, check_open
from vrooms.calls.service import CallService
from vrooms.egress import EgressPolicies
from vrooms.errors import ApiError, bad_argument, not_found
from vrooms.events import repository as events_repository
from vrooms.events.models import EventType
from vrooms.media.types import MediaError
from vrooms.pstn import numbers
from vrooms.recording.service import SUBSCRIPTION_PREFIX as RECORDING_SUBSCRIPTION
from vrooms.recording.service import RecordingService
from vrooms.recording.store import RecordingStore
from vrooms.rooms import repository as rooms_repository

log = logging.getLogger("vrooms.automation")

# Who started a call that an app connected to first (the records' ``started_by``).
AUTOMATION_USER = "vrooms:callAutomation"
_DEFAULT_INVITATION_SECONDS = 30.0
_SHUTDOWN_FLUSH_SECONDS = 5.0


def _phones_allowed(call: Call) -> None:
    if not call.pstn_dial_out_enabled:
        raise CallRefused(
            Refusal.PSTN_DIAL_OUT_DISABLED,
            "This room does not allow phone participants (its pstnDialOutEnabled is false).",
        )


class AutomationService:
    def __init__(
        self,
        calls: CallService,
        prompts: PromptRenderer,
        egress: EgressPolicies,
        recordings: RecordingStore,
        *,
        public_url: str,
        callback_retry_seconds: float,
    ) -> None:
        self.calls = calls
        self.prompts = prompts
        self.egress = egress
        self.connections: dict[str, Connection] = {}
        self.recordings = RecordingService(
            calls,
            self.connection,
            recordings,
            public_url,
            callback_retry_seconds=callback_retry_seconds,
            callback_policy=egress.callbacks,
        )
        self._retry_seconds = callback_retry_seconds
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[callbacks.CallbackWriter] = set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections ------------------------------------------------------------------

    async def _check_urls(self, callback_uri: str, streaming: StreamingOptions | None) -> None:
        await callbacks.check_uri(self.egress.callbacks, callback_uri, "callbackUri")
        if streaming is not None:
            field = "mediaStreamingOptions.transportUrl"
            await callbacks.check_uri(self.egress.streaming, streaming.transport_url, field, ("ws", "wss"))

    async def connect(self, request: ConnectRequest) -> Connection:
        await self._check_urls(request.callback_uri, request.streaming)
        call = await self._call_for(request)
        return await self._open(call, request.callback_uri, request.operation_context, request.streaming)

    async def _open(
        self, call: Call, callback_uri: str, operation_context: str | None, streaming: StreamingOptions | None = None
    ) -> Connection:
        """A connection watching ``call``: its callback subscription and ``CallConnected`` in one write."""
        connection_id = str(uuid.uuid4())
        name = callbacks.subscription_name(connection_id, call.id)
        writer = callbacks.CallbackWriter(self.calls.database, name, self._retry_seconds, self.calls.events_written)
        self._writers.add(writer)
        writer.task.add_done_callback(lambda _: self._writers.discard(writer))
        connection = Connection(connection_id, call, callback_uri, operation_context, writer, streaming=streaming)
        connection.on_closed = self._closed
        async with self.calls.database.write() as conn:
            await callbacks.open_subscription(conn, connection_id, call.id, callback_uri)
            data = connection.data(operation_context)
            await events_repository.append(conn, callbacks.event(connection_id, EventType.CALL_CONNECTED, data))
        self.calls.events_written()
        async with call.lock:
            if call.ended:
                connection.disconnect(results.CALL_GONE)
            else:
                call.watchers.append(connection)
                self.connections[connection_id] = connection
                connection.participants_changed()
        log.info("call connection %s to call %s (room %s)", connection_id, call.id, call.room_id or "none")
        if streaming is not None and streaming.start_at_once and connection.connected:
            self.start_streaming(connection, None)
        return connection

    def _closed(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        if connection.stream is not None:  # the stream ends with the connection, without a callback
            stream, connection.stream = connection.stream, None
            self._spawn(stream.stop())

    async def _call_for(self, request: ConnectRequest) -> Call:
        if request.server_call_id is not None:
            call = next((c for c in self.calls.calls.values() if c.id == request.server_call_id), None)
            if call is None or call.ended:
                raise not_found("No call with this serverCallId is running.", "callLocator.serverCallId")
            return call
        assert request.room_id is not None
        async with self.calls.database.read() as conn:
            room = await rooms_repository.get_room(conn, request.room_id)
        if room is None:
            raise not_found(f"Room {request.room_id} does not exist.", "callLocator.roomId")
        check_open(room, self.calls.clock())
        return await self.calls.call_of(room, AUTOMATION_USER, Role.PRESENTER)

    def connection(self, connection_id: str) -> Connection:
        connection = self.connections.get(connection_id)
        if connection is None:
            raise not_found(f"No call connection {connection_id[:64]} (it may have ended).", "callConnectionId")
        return connection

    @staticmethod
    def properties(connection: Connection) -> dict[str, Any]:
        return {
            "callConnectionId": connection.id,
            "serverCallId": connection.call.id,
            "targets": [],
            "callConnectionState": "connected" if connection.connected else "disconnected",
            "callbackUri": connection.callback_uri,
            "correlationId": connection.call.id,
            **({"mediaStreamingSubscription": _streaming_subscription(connection)} if connection.streaming else {}),
        }

    async def hang_up(self, connection: Connection) -> None:
        """The app leaves; the call goes on while anyone is in it."""
        call = connection.call
        async with call.lock:
            if connection in call.watchers:
                call.watchers.remove(connection)
            connection.disconnect(results.HUNG_UP)
            empty = call.empty and not call.ended
        if empty:
            await self.calls.end_call(call, EndReason.ALL_LEFT)

    async def terminate(self, connection: Connection) -> None:
        await self.calls.end_call(connection.call, EndReason.ENDED_BY_SERVER)

    # -- participants -------------------------------------------------------------------

    @staticmethod
    def participants(connection: Connection) -> list[dict[str, Any]]:
        return [_wire(p) for p in connection.call.participants.values() if p.state in IN_CALL_STATES]

    def participant(self, connection: Connection, raw_id: str) -> dict[str, Any]:
        return _wire(self._in_call(connection, raw_id))

    @staticmethod
    def _in_call(connection: Connection, raw_id: str) -> Participant:
        return AutomationService._in_call_of(connection.call, raw_id)

    @staticmethod
    def _in_call_of(call: Call, raw_id: str) -> Participant:
        found = next((p for p in call.participants.values() if p.user_id == raw_id), None)
        if found is None:
            raise not_found(f"{raw_id[:64]} is not in the call.", "participant")
        return found

    async def add(self, connection: Connection, request: AddRequest) -> dict[str, Any]:
        if request.raw_id in connection.adds:
            raise ApiError(409, "Conflict", f"{request.raw_id} is already being added.", "participantToAdd")
        pending = PendingAdd(request.raw_id, request.operation_context)
        connection.adds[request.raw_id] = pending
        try:
            number = numbers.number_of(request.raw_id)
            if number is not None:
                await self._dial(connection, pending, number, request.invitation_seconds)
            else:
                await self._ring(connection, pending, request.invitation_seconds)
        except BaseException:
            if connection.adds.get(request.raw_id) is pending:
                del connection.adds[request.raw_id]
            raise
        return {
            "participant": participant_to_wire(request.raw_id, muted=False, on_hold=False),
            "operationContext": request.operation_context,
            "invitationId": pending.invitation_id,
        }

    async def _dial(self, connection: Connection, pending: PendingAdd, number: str, seconds: float | None) -> None:
        call = connection.call
        _phones_allowed(call)
        telephony = self.calls.telephony
        if telephony is None:
            raise CallRefused(Refusal.PSTN_UNAVAILABLE, "This server has no SIP trunk (VROOMS_SIP_TRUNK_URI).")
        phone = await telephony.dial(call, number, by=None, check=lambda: _phones_allowed(call))
        if seconds is not None:
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(
                seconds, lambda: self._spawn(self.calls.leave(phone, LeaveReason.NO_ANSWER))
            )

    async def _ring(self, connection: Connection, pending: PendingAdd, seconds: float | None) -> None:
        call = connection.call
        inviter = {"participantId": None, "userId": AUTOMATION_USER, "displayName": "Call Automation"}
        try:
            await moderation.ring(self.calls, call, pending.raw_id, inviter, connection, check=lambda: None)
        except CallRefused as refused:
            if refused.code != Refusal.INVITEE_NOT_CONNECTED:
                raise
            connection.add_finished(pending, results.NOT_CONNECTED)  # ACS: accepted, then failed
            return

        def timed_out() -> None:
            if moderation.stop_ringing(self.calls, call, pending.raw_id) or pending.participant_id is None:
                connection.add_finished(pending, results.TIMED_OUT)

        pending.timer = asyncio.get_running_loop().call_later(seconds or _DEFAULT_INVITATION_SECONDS, timed_out)

    async def cancel_add(self, connection: Connection, request: CancelAddRequest) -> None:
        pending = next((p for p in connection.adds.values() if p.invitation_id == request.invitation_id), None)
        if pending is None:
            connection.emit(
                EventType.CANCEL_ADD_PARTICIPANT_FAILED,
                request.operation_context,
                invitationId=request.invitation_id,
                resultInformation=results.NOT_PENDING.wire(),
            )
            return
        del connection.adds[pending.raw_id]  # withdrawn: no AddParticipantFailed follows
        if pending.timer is not None:
            pending.timer.cancel()
        moderation.stop_ringing(self.calls, connection.call, pending.raw_id)
        phone = connection.call.participants.get(pending.participant_id or "")
        if phone is not None and phone.phone_number is not None:
            await self.calls.leave(phone, LeaveReason.REMOVED_BY_SERVER)
        connection.emit(
            EventType.CANCEL_ADD_PARTICIPANT_SUCCEEDED,
            request.operation_context,
            invitationId=request.invitation_id,
            resultInformation=results.CANCELLED.wire(),
        )

    async def remove(self, connection: Connection, request: TargetRequest) -> None:
        target = self._in_call(connection, request.raw_id)
        await self.calls.leave(target, LeaveReason.REMOVED_BY_SERVER)
        connection.emit(
            EventType.REMOVE_PARTICIPANT_SUCCEEDED,
            request.operation_context,
            participant=participant_to_wire(request.raw_id, muted=False, on_hold=False)["identifier"],
            resultInformation=results.REMOVED.wire(),
        )

    async def mute(self, connection: Connection, request: TargetRequest) -> None:
        await moderation.silence(self.calls, self._in_call(connection, request.raw_id), by=AUTOMATION_USER)

    async def hold(self, connection: Connection, request: TargetRequest, *, on_hold: bool) -> None:
        await self.calls.set_on_hold(self._in_call(connection, request.raw_id), on_hold)

    # -- DTMF -------------------------------------------------------------------------

    def _phone(self, connection: Connection, raw_id: str) -> Participant:
        target = self._in_call(connection, raw_id)
        if target.phone_number is None:
            raise ApiError(400, "BadRequest", "DTMF works with phone participants only.", "targetParticipant")
        return target

    async def send_dtmf(self, connection: Connection, request: DtmfRequest) -> None:
        target = self._phone(connection, request.raw_id)
        telephony = self.calls.telephony
        assert telephony is not None  # a phone participant exists only with a trunk
        self._spawn(self._send_tones(connection, target, request, telephony))

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

    # -- prompts and DTMF recognition ------------------------------------------------------

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
        targets = [self._in_call(connection, raw) for raw in request.targets]
        sources = await self._sources(request.sources, "playSources")
        context = request.operation_context
        connection.media.submit(
            MediaOperation(
                work=partial(self._play, connection, sources, targets, request.loop, context),
                cancelled=partial(
                    connection.emit, EventType.PLAY_CANCELED, context, **_result(results.MEDIA_CANCELLED)
                ),
                failed=partial(
                    connection.emit, EventType.PLAY_FAILED, context, **_result(results.MEDIA_OPERATION_FAILED)
                ),
            ),
            interrupt=request.interrupt,
        )

    async def _play(
        self, connection: Connection, sources: list[Source], targets: list[Participant], loop: bool, context: Any
    ) -> None:
        try:
            async with self.prompts.clip(sources) as clip, contextlib.AsyncExitStack() as playing:
                senders = await self._start(playing, connection.call, clip, targets, loop=loop)
                connection.emit(EventType.PLAY_STARTED, context, **_result(results.OK))
                await self._play_out(clip, targets, senders, loop=loop)
        except PromptError as exc:
            failed = results.FILE_NOT_DOWNLOADED if exc.download else results.FILE_INVALID
            connection.emit(EventType.PLAY_FAILED, context, **_result(failed, str(exc)))
            return
        except (MediaError, CallRefused) as exc:
            log.warning("a prompt could not be played: %s", exc)
            connection.emit(EventType.PLAY_FAILED, context, **_result(results.PLAY_MEDIA_FAILED))
            return
        connection.emit(EventType.PLAY_COMPLETED, context, **_result(results.PLAYED))

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
        connection.media.submit(
            MediaOperation(
                work=partial(self._recognize, connection, target, prompt, request),
                cancelled=partial(
                    connection.emit, EventType.RECOGNIZE_CANCELED, context, **_result(results.MEDIA_CANCELLED)
                ),
                failed=partial(
                    connection.emit, EventType.RECOGNIZE_FAILED, context, **_result(results.MEDIA_OPERATION_FAILED)
                ),
            ),
            interrupt=request.interrupt,
        )

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
            connection.emit(EventType.RECOGNIZE_FAILED, request.operation_context, **_result(failed, str(exc)))
            return
        finally:
            collector.close()
            connection.collectors.pop(target.id, None)
        result = results.RECOGNIZED[outcome]
        if not result.ok:
            connection.emit(EventType.RECOGNIZE_FAILED, request.operation_context, **_result(result))
            return
        tones = [TONE_NAMES[t] for t in collector.tones]
        connection.emit(
            EventType.RECOGNIZE_COMPLETED,
            request.operation_context,
            recognitionType="dtmf",
            dtmfResult={"tones": tones},
            **_result(result),
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

    # -- media streaming ----------------------------------------------------------------------

    def start_streaming(self, connection: Connection, operation_context: str | None) -> None:
        """Refused at once if it cannot start; else MediaStreamingStarted (or Failed) follows."""
        if connection.streaming is None:
            raise bad_argument(
                "This call connection has no mediaStreamingOptions: give them when connecting or answering.",
                "mediaStreamingOptions",
            )
        if connection.stream is not None:
            raise bad_argument("Media streaming is already running on this call connection.", "mediaStreamingOptions")
        if not connection.streaming.mixed and any(
            c.call is connection.call and c.stream is not None and not c.stream.options.mixed
            for c in self.connections.values()
        ):
            raise bad_argument(
                "Another call connection streams this call unmixed; one unmixed stream per call at a time.",
                "mediaStreamingOptions.audioChannelType",
            )
        stream = MediaStream(
            connection.streaming,
            connection.streaming_id,
            plane=self.calls.media_plane(),
            media=connection.call.media,
            egress=self.egress.streaming,
            isolate=partial(self._isolate, connection.call),
            on_broken=lambda broken, failure: self._spawn(self._stream_broken(connection, broken, failure)),
        )
        connection.stream = stream
        self._spawn(self._start_stream(connection, stream, operation_context))

    async def _start_stream(self, connection: Connection, stream: MediaStream, operation_context: str | None) -> None:
        try:
            await stream.start()
        except (StreamingFailed, MediaError) as exc:
            failure = exc if isinstance(exc, StreamingFailed) else StreamingFailed("unspecifiedError", str(exc))
            if connection.stream is stream:
                connection.stream = None
            _streaming_update(connection, EventType.MEDIA_STREAMING_FAILED, operation_context, failure.detail)
            return
        if connection.stream is not stream:  # stopped (or the connection closed) while it started
            await stream.stop()
            return
        for participant in connection.call.participants.values():
            stream.joined(participant.id, participant.user_id)
        _streaming_update(connection, EventType.MEDIA_STREAMING_STARTED, operation_context, "subscriptionStarted")

    @staticmethod
    async def _isolate(call: Call, participant_id: str, slot: int | None) -> None:
        participant = call.participants.get(participant_id)
        if participant is not None and participant.audio is not None:
            with contextlib.suppress(MediaError):
                await participant.audio.isolate(slot)

    async def stop_streaming(self, connection: Connection, operation_context: str | None) -> None:
        stream, connection.stream = connection.stream, None
        if stream is None:
            raise bad_argument("Media streaming is not running on this call connection.", "mediaStreamingOptions")
        await stream.stop()
        _streaming_update(connection, EventType.MEDIA_STREAMING_STOPPED, operation_context, "subscriptionStopped")

    async def _stream_broken(self, connection: Connection, stream: MediaStream, failure: StreamingFailed) -> None:
        if connection.stream is not stream:
            return
        connection.stream = None
        await stream.stop()
        _streaming_update(connection, EventType.MEDIA_STREAMING_FAILED, None, failure.detail)

    # -- incoming calls (dial-in without a static rule) ---------------------------------------

    def _telephony(self) -> Telephony:
        if self.calls.telephony is None:
            raise CallRefused(Refusal.PSTN_UNAVAILABLE, "This server has no SIP trunk (VROOMS_SIP_TRUNK_URI).")
        return self.calls.telephony

    async def answer(self, request: AnswerRequest) -> Connection:
        """The caller is answered into a call of its own (a lobby) that the new connection watches."""
        await self._check_urls(request.callback_uri, request.streaming)
        lobby = await self._telephony().answer_incoming(request.context)
        return await self._open(lobby, request.callback_uri, request.operation_context, request.streaming)

    def reject(self, context: str, code: int) -> None:
        self._telephony().reject_incoming(context, code)

    def redirect(self, context: str, number: str) -> None:
        self._telephony().redirect_incoming(context, number)

    async def move(self, connection: Connection, request: MoveRequest) -> dict[str, Any]:
        """``moveHere``: phone participants of another call (an answered caller's) into this one."""
        source = self._source_call(request.from_call)
        phones = [self._in_call_of(source, raw) for raw in request.raw_ids]
        moved = []
        for phone in phones:
            if phone.phone_number is None:
                raise bad_argument("Only phone participants can be moved between calls.", "targetParticipants")
            arrived = await self._telephony().move(phone, connection.call)
            moved.append(_wire(arrived))
            connection.emit(
                EventType.MOVE_PARTICIPANT_SUCCEEDED,
                request.operation_context,
                participant=moved[-1]["identifier"],
                fromCall=request.from_call,
                resultInformation=results.OK.wire(),
            )
        return {"participants": moved, "operationContext": request.operation_context, "fromCall": request.from_call}

    def _source_call(self, from_call: str) -> Call:
        """``fromCall``: the other call's connection id (as the SDK documents it) or its serverCallId."""
        connection = self.connections.get(from_call)
        if connection is not None:
            return connection.call
        found = self.calls.lobbies.get(from_call) or next(
            (c for c in self.calls.calls.values() if c.id == from_call), None
        )
        if found is None:
            raise not_found(f"No call {from_call[:64]} to move participants from.", "fromCall")
        return found

    # -- the call host's life -----------------------------------------------------------

    async def close_abandoned(self) -> int:
        """Connections of a call host that stopped without ending them: tell their apps."""
        async with self.calls.database.write() as conn:
            live = await events_repository.live_callback_subscriptions(conn)
            for subscription in live:
                names = callbacks.parse_name(subscription.name)
                if names is None:
                    continue
                connection_id, call_id = names
                if connection_id.startswith(RECORDING_SUBSCRIPTION):
                    continue  # a recording's: the recording service finishes it (recover)
                data = {
                    "callConnectionId": connection_id,
                    "serverCallId": call_id,
                    "correlationId": call_id,
                    "resultInformation": results.HOST_RESTARTED.wire(),
                }
                await events_repository.append(conn, callbacks.event(connection_id, EventType.CALL_DISCONNECTED, data))
                await events_repository.expire_subscription(
                    conn, subscription.name, now_micros() + int(self._retry_seconds * 1_000_000)
                )
        return len(live)

    async def shutdown(self) -> None:
        """After the calls ended: let recordings and connections write their last callbacks."""
        for task in list(self._tasks):
            task.cancel()
        await self.recordings.shutdown()
        writers = [writer.task for writer in self._writers]
        if writers:
            await asyncio.wait(writers, timeout=_SHUTDOWN_FLUSH_SECONDS)


async def _cancel(task: asyncio.Future[None]) -> None:
    """Stop a sender and wait until its process is gone; how it ended is already reported, or moot."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, PromptError):
        await task


def _result(result: results.Result, message: str | None = None) -> dict[str, Any]:
    wire = result.wire()
    if message:
        wire["message"] = f"{wire['message']} {message}"
    return {"resultInformation": wire}


_STREAMING_STATUS = {
    EventType.MEDIA_STREAMING_STARTED: ("mediaStreamingStarted", results.STREAMING_STARTED),
    EventType.MEDIA_STREAMING_STOPPED: ("mediaStreamingStopped", results.STREAMING_STOPPED),
    EventType.MEDIA_STREAMING_FAILED: ("mediaStreamingFailed", results.STREAMING_FAILED),
}


def _streaming_update(connection: Connection, kind: EventType, operation_context: str | None, detail: str) -> None:
    status, result = _STREAMING_STATUS[kind]
    update = {"contentType": "Audio", "mediaStreamingStatus": status, "mediaStreamingStatusDetails": detail}
    connection.emit(kind, operation_context, mediaStreamingUpdate=update, resultInformation=result.wire())


def _streaming_subscription(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.streaming_id,
        "state": "active" if connection.stream is not None else "inactive",
        "subscribedContentTypes": ["audio"],
    }


def _wire(participant: Participant) -> dict[str, Any]:
    return participant_to_wire(
        participant.user_id, muted=participant.muted, on_hold=participant.state == ParticipantState.ON_HOLD
    )
