"""Starting, re-languaging and stopping a call connection's transcription, and telling the app.

A transcription starts at the app's request or at once when the connection asks for it; it
reports TranscriptionStarted, then Updated (a new locale), Stopped (the app stopped it) or
Failed (it could not start, or the app's WebSocket closed or stopped reading). A locale without
a model, or a call whose speakers an unmixed media stream has apart, is refused at once (400).
A transcription ends with its connection, without a callback.
"""

from __future__ import annotations

from typing import Any

from vrooms.automation import app_socket
from vrooms.automation.connection import Connection
from vrooms.automation.transcription import Transcription
from vrooms.callbacks import results
from vrooms.calls.captioning import LIVE_TEXT, LiveTextUnavailable, Transcripts
from vrooms.egress import EgressPolicy
from vrooms.errors import bad_argument
from vrooms.events.models import EventType
from vrooms.supervision import TaskSet

_OPTIONS = "transcriptionOptions"


class TranscriptionControl:
    def __init__(self, transcripts: Transcripts, egress: EgressPolicy, tasks: TaskSet) -> None:
        self.transcripts = transcripts
        self.egress = egress
        self._tasks = tasks

    def check_locale(self, locale: str, field: str) -> None:
        supported = self.transcripts.languages()
        if locale not in supported:
            raise bad_argument(f"No speech model for {locale!r} here; supported: {', '.join(supported)}.", field)

    def start(self, connection: Connection, locale: str | None, operation_context: str | None) -> None:
        """Refused at once if it cannot start; else TranscriptionStarted (or Failed) follows."""
        options = connection.transcribing
        if options is None:
            raise bad_argument(
                f"This call connection has no {_OPTIONS}: give them when connecting or answering.", _OPTIONS
            )
        if connection.transcription is not None:
            raise bad_argument("Transcription is already running on this call connection.", _OPTIONS)
        self.check_locale(locale or options.locale, "locale" if locale else f"{_OPTIONS}.locale")
        holder = connection.call.speakers_apart_elsewhere(LIVE_TEXT)
        if holder is not None:
            raise bad_argument(f"The call's speakers are streamed apart ({holder}); stop that stream first.", _OPTIONS)
        transcription = Transcription(
            options.transport_url,
            connection.transcription_id,
            locale or options.locale,
            intermediate=options.intermediate,
            egress=self.egress,
            on_broken=lambda t, why: self._broken_soon(connection, t, why),
        )
        connection.transcription = transcription
        self._tasks.spawn(self._start(connection, transcription, operation_context))

    async def _start(self, connection: Connection, transcription: Transcription, operation_context: str | None) -> None:
        try:
            await transcription.open(connection.id, connection.call.id)
            await self._listen(connection, transcription, transcription.locale)
        except (app_socket.AppSocketFailed, LiveTextUnavailable) as exc:
            socket_failed = isinstance(exc, app_socket.AppSocketFailed)
            if connection.transcription is transcription:
                connection.transcription = None
            await self._stop(connection, transcription)
            detail = "streamConnectionUnsuccessful" if socket_failed else "speechServicesConnectionError"
            result = results.TRANSCRIPTION_SOCKET_FAILED if socket_failed else results.TRANSCRIPTION_UNAVAILABLE
            _update(connection, EventType.TRANSCRIPTION_FAILED, operation_context, detail, result, str(exc))
            return
        if connection.transcription is not transcription:  # stopped (or the connection closed) meanwhile
            await self._stop(connection, transcription)
            return
        _update(connection, EventType.TRANSCRIPTION_STARTED, operation_context, "subscriptionStarted")

    async def update(self, connection: Connection, locale: str, operation_context: str | None) -> None:
        transcription = self._running(connection)
        self.check_locale(locale, "locale")
        try:
            await self._listen(connection, transcription, locale)
        except LiveTextUnavailable as exc:
            raise bad_argument(f"The locale cannot change now: {exc}.", "locale") from None
        transcription.locale = locale
        _update(connection, EventType.TRANSCRIPTION_UPDATED, operation_context, "transcriptionLocaleUpdated")

    async def stop(self, connection: Connection, operation_context: str | None) -> None:
        transcription = self._running(connection)
        connection.transcription = None
        await self._stop(connection, transcription)
        _update(connection, EventType.TRANSCRIPTION_STOPPED, operation_context, "subscriptionStopped")

    def closed(self, connection: Connection) -> None:
        """The connection ended: its transcription stops, without a callback."""
        if connection.transcription is not None:
            transcription, connection.transcription = connection.transcription, None
            self._tasks.spawn(self._stop(connection, transcription))

    @staticmethod
    def _running(connection: Connection) -> Transcription:
        if connection.transcription is None:
            raise bad_argument("Transcription is not running on this call connection.", _OPTIONS)
        return connection.transcription

    def _broken_soon(self, connection: Connection, transcription: Transcription, why: str) -> None:
        self._tasks.spawn(self._broken(connection, transcription, why))

    async def _broken(self, connection: Connection, transcription: Transcription, why: str) -> None:
        if connection.transcription is not transcription:
            return
        connection.transcription = None
        await self._stop(connection, transcription)
        _update(
            connection,
            EventType.TRANSCRIPTION_FAILED,
            None,
            "streamConnectionInterrupted",
            results.TRANSCRIPTION_SOCKET_FAILED,
            why,
        )

    async def _listen(self, connection: Connection, transcription: Transcription, locale: str) -> None:
        await self.transcripts.listen(connection.call, _key(connection), locale, transcription.caption)

    async def _stop(self, connection: Connection, transcription: Transcription) -> None:
        await self.transcripts.unlisten(connection.call, _key(connection))
        await transcription.close()


def _key(connection: Connection) -> str:
    return f"transcription {connection.id}"


_STATUS = {
    EventType.TRANSCRIPTION_STARTED: ("transcriptionStarted", results.TRANSCRIPTION_STARTED),
    EventType.TRANSCRIPTION_STOPPED: ("transcriptionStopped", results.TRANSCRIPTION_STOPPED),
    EventType.TRANSCRIPTION_UPDATED: ("transcriptionUpdated", results.TRANSCRIPTION_UPDATED),
    EventType.TRANSCRIPTION_FAILED: ("transcriptionFailed", results.TRANSCRIPTION_UNAVAILABLE),
}


def _update(
    connection: Connection,
    kind: EventType,
    operation_context: str | None,
    detail: str,
    result: results.Result | None = None,
    why: str = "",
) -> None:
    status, default = _STATUS[kind]
    information = (result or default).wire()
    if why:
        information["message"] = f"{information['message']} {why}"
    update = {"transcriptionStatus": status, "transcriptionStatusDetails": detail}
    connection.emit(kind, operation_context, transcriptionUpdate=update, resultInformation=information)


def subscription(connection: Connection) -> dict[str, Any]:
    options = connection.transcribing
    assert options is not None
    running = connection.transcription
    return {
        "id": connection.transcription_id,
        "state": "active" if running is not None else "inactive",
        "subscribedResultTypes": ["final", "intermediate"] if options.intermediate else ["final"],
        "locale": running.locale if running is not None else options.locale,
    }
