"""One operation-log record (columns of ACS's ``ACSRoomsIncomingOperations`` table)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from vrooms.rooms.models import Room, RosterChange


class Operation(StrEnum):
    CREATE_ROOM = "CreateRoom"
    PATCH_ROOM = "PatchRoom"
    GET_ROOM = "GetRoom"
    LIST_ROOMS = "ListRooms"
    DELETE_ROOM = "DeleteRoom"
    GET_PARTICIPANTS = "GetParticipants"
    ADD_PARTICIPANTS = "AddParticipants"
    UPDATE_PARTICIPANTS = "UpdateParticipants"
    REMOVE_PARTICIPANTS = "RemoveParticipants"


@dataclass
class OperationRecord:
    time_generated: int
    operation_name: str
    operation_version: str
    correlation_id: str
    level: str = "Informational"
    result_type: str = "Succeeded"
    result_signature: int = 200
    duration_ms: int = 0
    room_id: str | None = None
    room_lifespan: int | None = None
    pstn_dial_out_enabled: bool | None = None
    participants_count: int | None = None
    presenter_count: int | None = None
    attendee_count: int | None = None
    consumer_count: int | None = None
    collaborator_count: int | None = None
    added_participants_count: int | None = None
    removed_participants_count: int | None = None
    upserted_participants_count: int | None = None
    error_message: str | None = None

    def describe_room(self, room: Room) -> None:
        """Fill the room columns (lifespan in minutes, as ACS logs it)."""
        self.room_id = room.id
        self.room_lifespan = (room.valid_until - room.valid_from) // 60_000_000
        self.pstn_dial_out_enabled = room.pstn_dial_out_enabled
        self.participants_count = room.counts.total
        self.presenter_count = room.counts.presenters
        self.attendee_count = room.counts.attendees
        self.consumer_count = room.counts.consumers
        self.collaborator_count = room.counts.collaborators

    def describe_roster_change(self, change: RosterChange) -> None:
        """ACS logs a roster PATCH under the name of what it did, with its counts."""
        if change.removed and not (change.added or change.updated):
            self.operation_name = Operation.REMOVE_PARTICIPANTS.value
        elif change.updated and not (change.added or change.removed):
            self.operation_name = Operation.UPDATE_PARTICIPANTS.value
        self.describe_room(change.room)
        self.added_participants_count = change.added
        self.removed_participants_count = change.removed
        self.upserted_participants_count = change.added + change.updated

    def as_row(self) -> dict[str, Any]:
        return asdict(self)
