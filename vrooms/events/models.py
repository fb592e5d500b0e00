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
