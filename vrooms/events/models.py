"""Event types and the event record (no HTTP, no SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vrooms.api.times import now_micros


class EventType(StrEnum):
    # As ACS emits them (Event Grid system topic of a Communication Services resource).
    CALL_STARTED = "Microsoft.Communication.CallStarted"
    CALL_ENDED = "Microsoft.Communication.CallEnded"
    CALL_PARTICIPANT_ADDED = "Microsoft.Communication.CallParticipantAdded"
    CALL_PARTICIPANT_REMOVED = "Microsoft.Communication.CallParticipantRemoved"
    # A call from the SIP trunk to a number of this server (dial-in).
    INCOMING_CALL = "Microsoft.Communication.IncomingCall"
    # A recording's files are ready (``AcsRecordingFileStatusUpdatedEventData``).
    RECORDING_FILE_STATUS_UPDATED = "Microsoft.Communication.RecordingFileStatusUpdated"
    # vrooms extensions: ACS emits nothing for room lifecycle. The "Vrooms." prefix keeps
    # them apart from Microsoft's types in every filter and handler.
    ROOM_CREATED = "Vrooms.Rooms.RoomCreated"
    ROOM_UPDATED = "Vrooms.Rooms.RoomUpdated"
    ROOM_DELETED = "Vrooms.Rooms.RoomDeleted"
    ROSTER_CHANGED = "Vrooms.Rooms.RosterChanged"
    # Call Automation callbacks, as ACS posts them to a call connection's callbackUri (never to
    # Event Grid subscriptions): the ``Microsoft.Communication.<definition>`` of the ACS spec.
    CALL_CONNECTED = "Microsoft.Communication.CallConnected"
    CALL_DISCONNECTED = "Microsoft.Communication.CallDisconnected"
    PARTICIPANTS_UPDATED = "Microsoft.Communication.ParticipantsUpdated"
    ADD_PARTICIPANT_SUCCEEDED = "Microsoft.Communication.AddParticipantSucceeded"
    ADD_PARTICIPANT_FAILED = "Microsoft.Communication.AddParticipantFailed"
    REMOVE_PARTICIPANT_SUCCEEDED = "Microsoft.Communication.RemoveParticipantSucceeded"
    REMOVE_PARTICIPANT_FAILED = "Microsoft.Communication.RemoveParticipantFailed"
    CANCEL_ADD_PARTICIPANT_SUCCEEDED = "Microsoft.Communication.CancelAddParticipantSucceeded"
    CANCEL_ADD_PARTICIPANT_FAILED = "Microsoft.Communication.CancelAddParticipantFailed"
    SEND_DTMF_TONES_COMPLETED = "Microsoft.Communication.SendDtmfTonesCompleted"
    SEND_DTMF_TONES_FAILED = "Microsoft.Communication.SendDtmfTonesFailed"
    CONTINUOUS_DTMF_TONE_RECEIVED = "Microsoft.Communication.ContinuousDtmfRecognitionToneReceived"
    CONTINUOUS_DTMF_STOPPED = "Microsoft.Communication.ContinuousDtmfRecognitionStopped"
    MOVE_PARTICIPANT_SUCCEEDED = "Microsoft.Communication.MoveParticipantSucceeded"
    MOVE_PARTICIPANT_FAILED = "Microsoft.Communication.MoveParticipantFailed"
    PLAY_STARTED = "Microsoft.Communication.PlayStarted"
    PLAY_COMPLETED = "Microsoft.Communication.PlayCompleted"
    PLAY_FAILED = "Microsoft.Communication.PlayFailed"
    PLAY_CANCELED = "Microsoft.Communication.PlayCanceled"
    RECOGNIZE_COMPLETED = "Microsoft.Communication.RecognizeCompleted"
    RECOGNIZE_FAILED = "Microsoft.Communication.RecognizeFailed"
    RECOGNIZE_CANCELED = "Microsoft.Communication.RecognizeCanceled"
    RECORDING_STATE_CHANGED = "Microsoft.Communication.RecordingStateChanged"
    MEDIA_STREAMING_STARTED = "Microsoft.Communication.MediaStreamingStarted"
    MEDIA_STREAMING_STOPPED = "Microsoft.Communication.MediaStreamingStopped"
    MEDIA_STREAMING_FAILED = "Microsoft.Communication.MediaStreamingFailed"
    TRANSCRIPTION_STARTED = "Microsoft.Communication.TranscriptionStarted"
    TRANSCRIPTION_STOPPED = "Microsoft.Communication.TranscriptionStopped"
    TRANSCRIPTION_UPDATED = "Microsoft.Communication.TranscriptionUpdated"
    TRANSCRIPTION_FAILED = "Microsoft.Communication.TranscriptionFailed"


_EVENT_GRID_TYPES = {
    EventType.CALL_STARTED,
    EventType.CALL_ENDED,
    EventType.CALL_PARTICIPANT_ADDED,
    EventType.CALL_PARTICIPANT_REMOVED,
    EventType.INCOMING_CALL,
    EventType.RECORDING_FILE_STATUS_UPDATED,
}
CALLBACK_TYPES = frozenset(
    t for t in EventType if t.value.startswith("Microsoft.Communication.") and t not in _EVENT_GRID_TYPES
)


class EventSchema(StrEnum):
    """The two delivery formats, named as Event Grid names them."""

    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


# A call connection's callbacks: a subscription of this schema is made per connection (not
# through the subscription API); it gets only callback types, as a JSON array of CloudEvents
# with a JWT in ``Authorization``, as ACS delivers them.
CALLBACK_SCHEMA = "AcsCallAutomationCallback"


@dataclass(frozen=True)
class Event:
    type: EventType
    subject: str
    order_key: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: int = field(default_factory=now_micros)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox holds it: ``seq`` is its place in the total order."""

    seq: int
    id: str
    type: str
    subject: str
    order_key: str
    data: dict[str, Any]
    time: int


@dataclass(frozen=True)
class NewSubscription:
    """What a subscriber asks for."""

    name: str
    endpoint: str
    schema: str
    event_types: tuple[str, ...] | None
    subject_begins_with: str | None
    subject_ends_with: str | None
    secret: str | None
    max_events_per_batch: int


@dataclass(frozen=True)
class Subscription(NewSubscription):
    """A stored subscription: it receives the events after ``start_seq`` that match its filters."""

    id: str
    start_seq: int
    created_at: int
    # A callback subscription ends a while after its call connection (purged then).
    expires_at: int | None = None

    @property
    def is_callback(self) -> bool:
        return self.schema == CALLBACK_SCHEMA

    def matches(self, event: StoredEvent) -> bool:
        return (
            event.seq > self.start_seq
            and (event.type in CALLBACK_TYPES) == self.is_callback
            and (self.event_types is None or event.type in self.event_types)
            and (not self.subject_begins_with or event.subject.startswith(self.subject_begins_with))
            and (not self.subject_ends_with or event.subject.endswith(self.subject_ends_with))
        )
