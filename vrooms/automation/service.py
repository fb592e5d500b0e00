"""Call Automation in the call host: call connections, and the operations an app runs through them.

A connection watches one call and reports to the app's callback URI (``callbacks``). Connecting
to a room with no call starts it (the app is its first member, as a joiner would be); the call
then stays up while the app is connected, even with nobody in it, and ends when the app hangs
up and nobody is left, or when it terminates the call. An answered caller gets a call of its
own (a lobby) that the new connection watches. What an app does through a connection is in
``participants`` (add, remove, mute, move...), ``operations`` (prompts, DTMF) and
``stream_control`` (media streaming); recordings are ``recording.service``'s.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from vrooms.api.times import now_micros
from vrooms.auth.roles import Role
from vrooms.automation import stream_control, transcription_control
from vrooms.automation.connection import AUTOMATION_USER, Connection
from vrooms.automation.operations import MediaOperations
from vrooms.automation.participants import ParticipantOperations, telephony_of
from vrooms.automation.prompts import PromptRenderer
from vrooms.automation.schemas import AnswerRequest, ConnectRequest
from vrooms.automation.stream_control import StreamControl
from vrooms.automation.transcription_control import TranscriptionControl
from vrooms.callbacks import ids, results
from vrooms.callbacks import writer as callbacks
from vrooms.calls import repository as calls_repository
from vrooms.calls.call import Call
from vrooms.calls.captioning import Transcripts
from vrooms.calls.interface import RoomCalls
from vrooms.calls.models import EndReason
from vrooms.calls.rules import check_open
from vrooms.egress import EgressPolicies
from vrooms.errors import not_found
from vrooms.events import repository as events_repository
from vrooms.events.models import EventType
from vrooms.recording.service import SUBSCRIPTION_PREFIX as RECORDING_SUBSCRIPTION
from vrooms.recording.service import RecordingService
from vrooms.recording.store import RecordingStore
from vrooms.rooms import repository as rooms_repository
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.automation")

_SHUTDOWN_FLUSH_SECONDS = 5.0


class AutomationService:
    def __init__(
        self,
        calls: RoomCalls,
        prompts: PromptRenderer,
        egress: EgressPolicies,
        recordings: RecordingStore,
        transcripts: Transcripts,
        *,
        public_url: str,
        callback_retry_seconds: float,
    ) -> None:
        self.calls = calls
        self.egress = egress
        self.connections: dict[str, Connection] = {}
        self._tasks = TaskSet(log)
        self.participants = ParticipantOperations(calls, self._tasks, self.connections.get)
        self.media = MediaOperations(calls, prompts, self._tasks)
        self.streams = StreamControl(calls, egress.streaming, self._tasks)
        self.transcriptions = TranscriptionControl(transcripts, egress.streaming, self._tasks)
        self.recordings = RecordingService(
            calls,
            self.connection,
            recordings,
            transcripts,
            public_url,
            callback_retry_seconds=callback_retry_seconds,
            callback_policy=egress.callbacks,
        )
        self._retry_seconds = callback_retry_seconds
        self._writers: set[callbacks.CallbackWriter] = set()

    # -- connections ------------------------------------------------------------------

    async def _check(self, request: ConnectRequest | AnswerRequest) -> None:
        """What a connection's options name, refused before anything is done (400 naming the field)."""
        await callbacks.check_uri(self.egress.callbacks, request.callback_uri, "callbackUri")
        if request.streaming is not None:
            field = "mediaStreamingOptions.transportUrl"
            await callbacks.check_uri(self.egress.streaming, request.streaming.transport_url, field, ("ws", "wss"))
        if request.transcription is not None:
            field = "transcriptionOptions.transportUrl"
            await callbacks.check_uri(self.egress.streaming, request.transcription.transport_url, field, ("ws", "wss"))
            self.transcriptions.check_locale(request.transcription.locale, "transcriptionOptions.locale")

    async def connect(self, request: ConnectRequest) -> Connection:
        await self._check(request)
        call = await self._call_for(request)
        return await self._open(call, request)

    async def _open(self, call: Call, request: ConnectRequest | AnswerRequest) -> Connection:
        """A connection watching ``call``: its callback subscription and ``CallConnected`` in one write."""
        callback_uri, operation_context = request.callback_uri, request.operation_context
        connection_id = ids.with_room(call.room_id, str(uuid.uuid4()), self.calls.node)
        connection = self._connection_of(connection_id, call, callback_uri, operation_context)
        connection.streaming, connection.transcribing = request.streaming, request.transcription
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
        if request.streaming is not None and request.streaming.start_at_once and connection.connected:
            self.streams.start(connection, None)
        if request.transcription is not None and request.transcription.start_at_once and connection.connected:
            self.transcriptions.start(connection, None, None)
        return connection

    def _connection_of(
        self, connection_id: str, call: Call, callback_uri: str, operation_context: str | None
    ) -> Connection:
        name = callbacks.subscription_name(connection_id, call.id)
        writer = callbacks.CallbackWriter(self.calls.database, name, self._retry_seconds, self.calls.events_written)
        self._writers.add(writer)
        writer.task.add_done_callback(lambda _: self._writers.discard(writer))
        connection = Connection(connection_id, call, callback_uri, operation_context, writer)
        connection.on_closed = self._closed
        return connection

    def _closed(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        self.streams.closed(connection)
        self.transcriptions.closed(connection)

    async def _call_for(self, request: ConnectRequest) -> Call:
        if request.server_call_id is not None:
            call = self.calls.find_call(request.server_call_id)
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
            **({"mediaStreamingSubscription": stream_control.subscription(connection)} if connection.streaming else {}),
            **(
                {"transcriptionSubscription": transcription_control.subscription(connection)}
                if connection.transcribing
                else {}
            ),
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

    # -- incoming calls (dial-in without a static rule) ---------------------------------------

    async def answer(self, request: AnswerRequest) -> Connection:
        """The caller is answered into a call of its own (a lobby) that the new connection watches."""
        await self._check(request)
        lobby = await telephony_of(self.calls).answer_incoming(request.context)
        return await self._open(lobby, request)

    def reject(self, context: str, code: int) -> None:
        telephony_of(self.calls).reject_incoming(context, code)

    def redirect(self, context: str, number: str) -> None:
        telephony_of(self.calls).redirect_incoming(context, number)

    # -- the call host's life -----------------------------------------------------------

    async def close_abandoned(self) -> int:
        """Connections whose call ended without them (their call host stopped): tell their apps.

        A connection of a call still open (held by another node, or by a lost node until a
        survivor adopts it) stays: its app keeps it, and the adopter opens it again.
        """
        closed = 0
        async with self.calls.database.write() as conn:
            live = await events_repository.live_callback_subscriptions(conn)
            open_calls = await calls_repository.open_call_ids(conn)
            for subscription in live:
                names = callbacks.parse_name(subscription.name)
                if names is None:
                    continue
                connection_id, call_id = names
                if connection_id.startswith(RECORDING_SUBSCRIPTION) or call_id in open_calls:
                    continue  # a recording's (the recording service finishes it), or a call that goes on
                closed += 1
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
        return closed

    async def adopted(self, call: Call) -> None:
        """A call adopted from a lost node: its apps' connections again (same ids, callbacks as before)
        and its recording, which goes on here."""
        await self.recordings.adopt(call)
        async with self.calls.database.read() as conn:
            live = await events_repository.live_callback_subscriptions(conn)
        for subscription in live:
            names = callbacks.parse_name(subscription.name)
            if names is None or names[1] != call.id or names[0].startswith(RECORDING_SUBSCRIPTION):
                continue
            connection = self._connection_of(names[0], call, subscription.endpoint, None)
            call.watchers.append(connection)
            self.connections[connection.id] = connection
            connection.participants_changed()
            log.warning("call connection %s reopened on this node with its call %s", connection.id, call.id)

    async def find(self, connection_id: object) -> None:
        """Before an operation on a connection this node does not hold: if it is a live connection
        of a room whose call a lost node held, adopt that call (which reopens the connection)."""
        if not isinstance(connection_id, str) or connection_id in self.connections:
            return
        room_id = ids.room_in(connection_id)
        if room_id is None:
            return
        async with self.calls.database.read() as conn:
            live = await events_repository.live_callback_subscriptions(conn)
            room = await rooms_repository.get_room(conn, room_id)
        known = any((callbacks.parse_name(s.name) or ("",))[0] == connection_id for s in live)
        if known and room is not None:
            await self.calls.call_of(room, AUTOMATION_USER, Role.PRESENTER)

    async def shutdown(self) -> None:
        """After the calls ended: let recordings and connections write their last callbacks."""
        await self._tasks.cancel_all()
        await self.recordings.shutdown()
        writers = [writer.task for writer in self._writers]
        if writers:
            await asyncio.wait(writers, timeout=_SHUTDOWN_FLUSH_SECONDS)
