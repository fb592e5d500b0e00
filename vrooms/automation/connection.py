"""A call connection: the app's presence in a room call, and what it is told.

A connection watches its call (``Call.watchers``): it receives the same messages as the
participants (``calls.protocol``) and turns them into ACS callbacks — a joined invitee is
``AddParticipantSucceeded``, a phone that leaves before it answers ``AddParticipantFailed``,
every change of who is in the call or muted or on hold ``ParticipantsUpdated``, a digit
``ContinuousDtmfRecognitionToneReceived``, the call's end ``CallDisconnected``. No I/O
here beyond handing events to its ``CallbackWriter``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vrooms.automation.media import DtmfCollector, MediaQueue
from vrooms.automation.schemas import TONE_NAMES, StreamingOptions, TranscriptionOptions, participant_to_wire
from vrooms.automation.streaming import MediaStream
from vrooms.automation.transcription import Transcription
from vrooms.callbacks import results
from vrooms.callbacks import writer as callbacks
from vrooms.calls.call import Call
from vrooms.calls.models import ParticipantState
from vrooms.events.models import Event, EventType
from vrooms.events.payloads import identifier

# A participant is "in the call" for the app once connected (a ringing phone is not yet).
IN_CALL_STATES = (ParticipantState.CONNECTED, ParticipantState.ON_HOLD)

# Who started a call that an app connected to first (the records' ``started_by``), and who an
# app's invitations and mutes come from.
AUTOMATION_USER = "vrooms:callAutomation"


@dataclass(eq=False)
class PendingAdd:
    """A participant being added: rung (an ACS user) or dialed (a phone), not yet in."""

    raw_id: str
    operation_context: str | None
    invitation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Its participant id once it joined (a phone: once dialed); it succeeds when Connected.
    participant_id: str | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class Snapshot:
    """What ``ParticipantsUpdated`` last reported: sent again only when it changes."""

    participants: tuple[tuple[str, bool, bool], ...]


@dataclass(eq=False)
class Connection:
    id: str
    call: Call
    callback_uri: str
    operation_context: str | None
    writer: callbacks.CallbackWriter
    connected: bool = True
    adds: dict[str, PendingAdd] = field(default_factory=dict)  # raw id -> pending add
    # Phone participant id -> [operationContext, last sequenceId] while recognizing DTMF.
    dtmf: dict[str, list[Any]] = field(default_factory=dict)
    # Phone participant id -> the digits a recognize request is collecting from it.
    collectors: dict[str, DtmfCollector] = field(default_factory=dict)
    media: MediaQueue = field(default_factory=MediaQueue)
    # Media streaming: the options given at connect or answer, and the stream while it runs.
    streaming: StreamingOptions | None = None
    stream: MediaStream | None = None
    streaming_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Transcription: the options given at connect or answer, and the transcription while it runs.
    transcribing: TranscriptionOptions | None = None
    transcription: Transcription | None = None
    transcription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _raw_ids: dict[str, str] = field(default_factory=dict)  # participant id -> raw id
    _sequence: int = 0
    _reported: Snapshot | None = None
    on_closed: Callable[[Connection], None] | None = None

    def __post_init__(self) -> None:
        self._raw_ids = {p.id: p.user_id for p in self.call.participants.values()}

    # -- the callback event data common to all ------------------------------------------

    def data(self, operation_context: str | None = None, **fields: Any) -> dict[str, Any]:
        return {
            "callConnectionId": self.id,
            "serverCallId": self.call.id,
            "correlationId": self.call.id,
            "operationContext": operation_context,
            **fields,
        }

    def emit(self, kind: EventType, operation_context: str | None = None, **fields: Any) -> None:
        self.writer.emit(callbacks.event(self.id, kind, self.data(operation_context, **fields)))

    def raw_id_of(self, participant_id: str) -> str | None:
        return self._raw_ids.get(participant_id)

    # -- calls.call.Listener ------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        handler = _HANDLERS.get(str(message.get("type")))
        if handler is not None and self.connected:
            handler(self, message)

    def _joined(self, message: dict[str, Any]) -> None:
        participant = message["participant"]
        raw, participant_id = participant["userId"], participant["participantId"]
        self._raw_ids[participant_id] = raw
        if self.stream is not None:
            self.stream.joined(participant_id, raw)
        pending = self.adds.get(raw)
        if pending is not None and pending.participant_id is None:
            pending.participant_id = participant_id  # in, not yet connected (a phone rings)
        self.participants_changed()

    def _updated(self, message: dict[str, Any]) -> None:
        participant = message["participant"]
        pending = self.adds.get(participant["userId"])
        answered = participant["state"] == ParticipantState.CONNECTED
        if pending is not None and pending.participant_id == participant["participantId"] and answered:
            self.add_finished(pending, results.ADDED)
        self.participants_changed()

    def _left(self, message: dict[str, Any]) -> None:
        participant_id = message["participantId"]
        raw = self._raw_ids.pop(participant_id, None)
        self.dtmf.pop(participant_id, None)
        if self.stream is not None:
            self.stream.left(participant_id)
        pending = self.adds.get(raw) if raw else None
        if pending is not None and pending.participant_id == participant_id:
            self.add_finished(pending, results.leave_result(message["reason"]))
        self.participants_changed()

    def _speaking(self, message: dict[str, Any]) -> None:
        if self.stream is not None and message.get("speaking"):
            self.stream.talking(str(message["participantId"]))

    def _declined(self, message: dict[str, Any]) -> None:
        pending = self.adds.get(message["userId"])
        if pending is not None:
            self.add_finished(pending, results.DECLINED)

    def _tone(self, message: dict[str, Any]) -> None:
        tone = TONE_NAMES.get(str(message["tone"]).upper())
        collector = self.collectors.get(message["participantId"])
        if collector is not None and tone is not None:
            collector.add(str(message["tone"]).upper())
        watch = self.dtmf.get(message["participantId"])
        if watch is None or tone is None:
            return
        watch[1] += 1
        self.emit(
            EventType.CONTINUOUS_DTMF_TONE_RECEIVED,
            watch[0],
            tone=tone,
            sequenceId=watch[1],
            resultInformation=results.OK.wire(),
        )

    def _call_ended(self, message: dict[str, Any]) -> None:
        self.disconnect(results.call_end_result(str(message.get("reason"))))

    # -- what the service tells it ----------------------------------------------------

    def add_finished(self, pending: PendingAdd, result: results.Result) -> None:
        if self.adds.get(pending.raw_id) is not pending:
            return
        del self.adds[pending.raw_id]
        if pending.timer is not None:
            pending.timer.cancel()
        kind = EventType.ADD_PARTICIPANT_SUCCEEDED if result.ok else EventType.ADD_PARTICIPANT_FAILED
        self.emit(
            kind, pending.operation_context, participant=identifier(pending.raw_id), resultInformation=result.wire()
        )

    def participants_changed(self) -> None:
        self.writer.emit(self._participants_updated)

    def _participants_updated(self) -> Event | None:
        """Computed when written: one event for a burst of changes, none for changes nobody sees."""
        people = [p for p in self.call.participants.values() if p.state in IN_CALL_STATES]
        snapshot = Snapshot(tuple((p.user_id, p.muted, p.state == ParticipantState.ON_HOLD) for p in people))
        if snapshot == self._reported:
            return None
        self._reported = snapshot
        self._sequence += 1
        listed = [participant_to_wire(raw, muted=m, on_hold=h) for raw, m, h in snapshot.participants]
        data = self.data(None, sequenceNumber=self._sequence, participants=listed, resultInformation=results.OK.wire())
        return callbacks.event(self.id, EventType.PARTICIPANTS_UPDATED, data)

    def disconnect(self, result: results.Result) -> None:
        """The app is out of the call (it hung up, or the call ended): the last callback."""
        if not self.connected:
            return
        for pending in list(self.adds.values()):
            self.add_finished(pending, results.CALL_GONE)
        self.emit(EventType.CALL_DISCONNECTED, self.operation_context, resultInformation=result.wire())
        self.connected = False
        self.media.cancel_all()
        self.writer.close()
        if self.on_closed is not None:
            self.on_closed(self)


_HANDLERS: dict[str, Callable[[Connection, dict[str, Any]], None]] = {
    "participantJoined": Connection._joined,
    "participantUpdated": Connection._updated,
    "participantLeft": Connection._left,
    "inviteDeclined": Connection._declined,
    "speaking": Connection._speaking,
    "dtmfReceived": Connection._tone,
    "callEnded": Connection._call_ended,
}
