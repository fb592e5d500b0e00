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
    # vrooms extensions: ACS emits nothing for room lifecycle. The "Vrooms." prefix keeps
    # them apart from Microsoft's types in every filter and handler.
    ROOM_CREATED = "Vrooms.Rooms.RoomCreated"
    ROOM_UPDATED = "Vrooms.Rooms.RoomUpdated"
    ROOM_DELETED = "Vrooms.Rooms.RoomDeleted"
    ROSTER_CHANGED = "Vrooms.Rooms.RosterChanged"


class EventSchema(StrEnum):
    """The two delivery formats, named as Event Grid names them."""

    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


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

    def matches(self, event: StoredEvent) -> bool:
        return (
            event.seq > self.start_seq
            and (self.event_types is None or event.type in self.event_types)
            and (not self.subject_begins_with or event.subject.startswith(self.subject_begins_with))
            and (not self.subject_ends_with or event.subject.endswith(self.subject_ends_with))
        )
