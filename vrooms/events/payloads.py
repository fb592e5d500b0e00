"""The events vrooms emits, with the data fields ACS puts in them.

Field names follow the Event Grid schemas of Microsoft.Communication
(``AcsCallingEventProperties``, ``AcsCallParticipantEventData``, ``AcsCallEndedEventData``:
specs/eventgrid/Microsoft.Communication/stable/2018-01-01). Subjects start with
``room/<roomId>`` so that one subscription can follow one room (``subjectBeginsWith``).
"""

from __future__ import annotations

from typing import Any

from vrooms.api.times import format_rfc3339
from vrooms.events.models import Event, EventType
from vrooms.rooms.models import Room


def identifier(raw_id: str) -> dict[str, Any]:
    """A CommunicationIdentifierModel (Common 2023-11-15): an ACS user, or a phone (raw id ``4:+1555...``)."""
    if raw_id.startswith("4:"):
        return {"kind": "phoneNumber", "rawId": raw_id, "phoneNumber": {"value": raw_id[2:]}}
    return {"kind": "communicationUser", "rawId": raw_id, "communicationUser": {"id": raw_id}}


def _calling(room_id: str, call_id: str, started_by: str, started_by_role: str) -> dict[str, Any]:
    return {
        "startedBy": {"communicationIdentifier": identifier(started_by), "role": started_by_role},
        "serverCallId": call_id,
        "group": None,
        "room": {"id": room_id},
        "isTwoParty": False,
        "correlationId": call_id,
        "isRoomsCall": True,
    }


def _call_subject(room_id: str, call_id: str) -> str:
    return f"room/{room_id}/call/{call_id}"


def incoming_call(to_number: str, from_number: str, caller_name: str, context: str, call_id: str) -> Event:
    """``AcsIncomingCallEventData``; ``incomingCallContext`` names the ringing call for Call Automation."""
    data = {
        "to": identifier(f"4:{to_number}"),
        "from": identifier(f"4:{from_number}"),
        "serverCallId": call_id,
        "callerDisplayName": caller_name,
        "incomingCallContext": context,
        "correlationId": call_id,
    }
    return Event(EventType.INCOMING_CALL, f"/caller/4:{from_number}/recipient/4:{to_number}", call_id, data)


def call_started(room_id: str, call_id: str, started_by: str, role: str) -> Event:
    return Event(
        EventType.CALL_STARTED, _call_subject(room_id, call_id), call_id, _calling(room_id, call_id, started_by, role)
    )


# Reason codes as SIP-style numbers, the way ACS reports them (code, subCode, phrase).
_END_CODES = {
    "AllParticipantsLeft": (0, 0),
    "EndedForAll": (0, 5000),
    "EndedByServer": (0, 5006),
    "RoomDeleted": (410, 5001),
    "RoomExpired": (410, 5002),
    "MediaServerFailure": (500, 5003),
    "ServerShutdown": (503, 5004),
    "ServerFailure": (500, 5005),
}


def call_ended(
    room_id: str,
    call_id: str,
    *,
    started_by: str,
    started_by_role: str,
    reason: str,
    ended_by: str | None,
    duration_seconds: float,
) -> Event:
    code, sub_code = _END_CODES.get(reason, (0, 0))
    data = _calling(room_id, call_id, started_by, started_by_role) | {
        "reason": {"code": code, "subCode": sub_code, "phrase": reason},
        "callDurationInSeconds": round(duration_seconds, 3),
        "endedBy": (
            {"communicationIdentifier": identifier(ended_by), "type": "Participant", "name": ended_by}
            if ended_by
            else {"communicationIdentifier": None, "type": "MicrosoftInternal", "name": "vrooms"}
        ),
    }
    return Event(EventType.CALL_ENDED, _call_subject(room_id, call_id), call_id, data)


def participant_event(
    added: bool,
    *,
    room_id: str,
    call_id: str,
    started_by: str,
    started_by_role: str,
    user: str,
    role: str,
    display_name: str,
    participant_id: str,
    user_agent: str,
    reason: str | None = None,
) -> Event:
    data = _calling(room_id, call_id, started_by, started_by_role) | {
        "user": {"communicationIdentifier": identifier(user), "role": role},
        "displayName": display_name,
        "participantId": participant_id,
        "userAgent": user_agent,
    }
    if reason is not None:
        data["reason"] = {"code": 0, "subCode": 0, "phrase": reason}
    kind = EventType.CALL_PARTICIPANT_ADDED if added else EventType.CALL_PARTICIPANT_REMOVED
    return Event(kind, f"{_call_subject(room_id, call_id)}/participant/{participant_id}", call_id, data)


def room_data(room: Room) -> dict[str, Any]:
    return {
        "roomId": room.id,
        "createdAt": format_rfc3339(room.created_at),
        "validFrom": format_rfc3339(room.valid_from),
        "validUntil": format_rfc3339(room.valid_until),
        "pstnDialOutEnabled": room.pstn_dial_out_enabled,
        "participantCount": room.counts.total,
    }


def room_event(kind: EventType, room: Room) -> Event:
    return Event(kind, f"room/{room.id}", room.id, room_data(room))


def room_deleted(room_id: str) -> Event:
    return Event(EventType.ROOM_DELETED, f"room/{room_id}", room_id, {"roomId": room_id})


def roster_changed(room: Room, *, upserted: dict[str, str], removed: list[str]) -> Event:
    data = room_data(room) | {
        "upserted": [{"rawId": raw_id, "role": role} for raw_id, role in sorted(upserted.items())],
        "removed": sorted(removed),
    }
    return Event(EventType.ROSTER_CHANGED, f"room/{room.id}", room.id, data)
