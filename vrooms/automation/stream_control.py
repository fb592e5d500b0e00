"""Starting and stopping a call connection's media stream (``MediaStream``), and telling the app.

A stream starts at the app's request or at once when the connection asks for it; it reports
MediaStreamingStarted, then Stopped (the app stopped it) or Failed (it could not start, or it
broke: the app's WebSocket closed or stopped reading). One unmixed stream per call at a time,
and not while the call's captions have its speakers apart (a participant is isolated on one
slot: ``Call.take_speakers_apart``). A stream ends with its connection, without a callback.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from vrooms.automation.connection import Connection
from vrooms.automation.streaming import MediaStream, StreamingFailed
from vrooms.callbacks import results
from vrooms.calls.interface import RoomCalls
from vrooms.egress import EgressPolicy
from vrooms.errors import bad_argument
from vrooms.events.models import EventType
from vrooms.media.types import MediaError
from vrooms.supervision import TaskSet

_APART = "media streaming"


class StreamControl:
    def __init__(self, calls: RoomCalls, egress: EgressPolicy, tasks: TaskSet) -> None:
        self.calls = calls
        self.egress = egress
        self._tasks = tasks

    def closed(self, connection: Connection) -> None:
        """The connection ended: its stream stops, without a callback."""
        if connection.stream is not None:
            stream, connection.stream = connection.stream, None
            self._tasks.spawn(self._stop(connection, stream))

    def start(self, connection: Connection, operation_context: str | None) -> None:
        """Refused at once if it cannot start; else MediaStreamingStarted (or Failed) follows."""
        if connection.streaming is None:
            raise bad_argument(
                "This call connection has no mediaStreamingOptions: give them when connecting or answering.",
                "mediaStreamingOptions",
            )
        if connection.stream is not None:
            raise bad_argument("Media streaming is already running on this call connection.", "mediaStreamingOptions")
        plane = self.calls.media_plane()  # may refuse (Janus restarting): before the speakers are taken
        if not connection.streaming.mixed:
            holder = connection.call.take_speakers_apart(_APART)
            if holder is not None:
                raise bad_argument(
                    f"The call's speakers are already streamed apart ({holder}); one at a time.",
                    "mediaStreamingOptions.audioChannelType",
                )
        stream = MediaStream(
            connection.streaming,
            connection.streaming_id,
            plane=plane,
            media=connection.call.media,
            egress=self.egress,
            isolate=partial(self.calls.isolate, connection.call),
            on_broken=partial(self._broken_soon, connection),
        )
        connection.stream = stream
        self._tasks.spawn(self._start_stream(connection, stream, operation_context))

    async def _start_stream(self, connection: Connection, stream: MediaStream, operation_context: str | None) -> None:
        try:
            await stream.start()
        except (StreamingFailed, MediaError) as exc:
            failure = exc if isinstance(exc, StreamingFailed) else StreamingFailed("unspecifiedError", str(exc))
            if connection.stream is stream:
                connection.stream = None
            await self._stop(connection, stream)
            _streaming_update(connection, EventType.MEDIA_STREAMING_FAILED, operation_context, failure.detail)
            return
        if connection.stream is not stream:  # stopped (or the connection closed) while it started
            await self._stop(connection, stream)
            return
        for participant in connection.call.participants.values():
            stream.joined(participant.id, participant.user_id)
        _streaming_update(connection, EventType.MEDIA_STREAMING_STARTED, operation_context, "subscriptionStarted")

    async def stop(self, connection: Connection, operation_context: str | None) -> None:
        stream, connection.stream = connection.stream, None
        if stream is None:
            raise bad_argument("Media streaming is not running on this call connection.", "mediaStreamingOptions")
        await self._stop(connection, stream)
        _streaming_update(connection, EventType.MEDIA_STREAMING_STOPPED, operation_context, "subscriptionStopped")

    def _broken_soon(self, connection: Connection, stream: MediaStream, failure: StreamingFailed) -> None:
        self._tasks.spawn(self._stream_broken(connection, stream, failure))

    async def _stream_broken(self, connection: Connection, stream: MediaStream, failure: StreamingFailed) -> None:
        if connection.stream is not stream:
            return
        connection.stream = None
        await self._stop(connection, stream)
        _streaming_update(connection, EventType.MEDIA_STREAMING_FAILED, None, failure.detail)

    @staticmethod
    async def _stop(connection: Connection, stream: MediaStream) -> None:
        await stream.stop()
        if not stream.options.mixed:
            connection.call.give_back_speakers_apart(_APART)


_STREAMING_STATUS = {
    EventType.MEDIA_STREAMING_STARTED: ("mediaStreamingStarted", results.STREAMING_STARTED),
    EventType.MEDIA_STREAMING_STOPPED: ("mediaStreamingStopped", results.STREAMING_STOPPED),
    EventType.MEDIA_STREAMING_FAILED: ("mediaStreamingFailed", results.STREAMING_FAILED),
}


def _streaming_update(connection: Connection, kind: EventType, operation_context: str | None, detail: str) -> None:
    status, result = _STREAMING_STATUS[kind]
    update = {"contentType": "Audio", "mediaStreamingStatus": status, "mediaStreamingStatusDetails": detail}
    connection.emit(kind, operation_context, mediaStreamingUpdate=update, resultInformation=result.wire())


def subscription(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.streaming_id,
        "state": "active" if connection.stream is not None else "inactive",
        "subscribedContentTypes": ["audio"],
    }
