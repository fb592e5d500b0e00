"""The Rooms wire format per api-version: parsing requests, rendering responses.

Versions (Rooms/stable/2023-06-14, 2024-04-15 in ../shared/specs; 2025-03-13 is the
official SDK's default): ``pstnDialOutEnabled`` exists from 2024-04-15 on, the
Collaborator role from 2025-03-13 on.
"""

from __future__ import annotations

import re
from typing import Any

from vrooms.api.bodies import json_type, optional_bool, reject_unknown_fields
from vrooms.api.times import from_micros, parse_rfc3339
from vrooms.auth.roles import Role
from vrooms.errors import bad_argument
from vrooms.rooms.models import NewRoom, Participant, Room, RoomChanges

V2023_06_14 = "2023-06-14"
V2024_04_15 = "2024-04-15"
V2025_03_13 = "2025-03-13"
VERSIONS = (V2023_06_14, V2024_04_15, V2025_03_13)

_ROOM_ID = re.compile(r"^[0-9]{1,32}\Z")
# Communication user ids: "8:acs:" then the resource and user parts.
_COMMUNICATION_USER = re.compile(r"^8:acs:[A-Za-z0-9][A-Za-z0-9._-]{0,249}\Z")


def has_pstn(version: str) -> bool:
    return version >= V2024_04_15


def roles_for(version: str) -> tuple[Role, ...]:
    if version >= V2025_03_13:
        return (Role.PRESENTER, Role.ATTENDEE, Role.CONSUMER, Role.COLLABORATOR)
    return (Role.PRESENTER, Role.ATTENDEE, Role.CONSUMER)


def check_room_id(room_id: str) -> str:
    if not _ROOM_ID.match(room_id):
        raise bad_argument(f"Invalid room ID '{room_id[:64]}': a room ID is a string of digits.", "roomId")
    return room_id


def check_raw_id(raw_id: str, target: str) -> str:
    if not _COMMUNICATION_USER.match(raw_id):
        raise bad_argument("Invalid format for communication identifier.", target)
    return raw_id


def _role(value: Any, version: str, target: str) -> Role:
    allowed = roles_for(version)
    if isinstance(value, str):
        for role in allowed:
            if role.value == value:
                return role
    shown = f"'{value}'" if isinstance(value, str) else json_type(value)
    raise bad_argument(f"Invalid role {shown} in api-version {version}; allowed: {', '.join(allowed)}.", target)


def _participants(value: Any, version: str, *, allow_removal: bool) -> dict[str, Role | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_argument(
            f"'participants' must be an object mapping raw IDs to {{\"role\": ...}}, not {json_type(value)}.",
            "participants",
        )
    result: dict[str, Role | None] = {}
    for raw_id, properties in value.items():
        target = f"participants['{raw_id[:260]}']"
        check_raw_id(raw_id, target)
        if properties is None:
            if not allow_removal:
                raise bad_argument("A new room's participants need a role object, not null.", target)
            result[raw_id] = None
            continue
        if not isinstance(properties, dict):
            raise bad_argument(f'{target} must be an object like {{"role": "Attendee"}}.', target)
        reject_unknown_fields(properties, {"role"})
        # ACS: "The default value is Attendee."
        result[raw_id] = _role(properties.get("role", "Attendee"), version, f"{target}.role")
    return result


def _room_fields(body: dict[str, Any], version: str) -> set[str]:
    allowed = {"validFrom", "validUntil"}
    # The SDK sends ``pstnDialOutEnabled: false`` whatever the api-version; only asking
    # for dial-out in a version that has no such field is an error.
    if has_pstn(version) or body.get("pstnDialOutEnabled") is not True:
        allowed.add("pstnDialOutEnabled")
    return allowed


def parse_new_room(body: dict[str, Any], version: str) -> NewRoom:
    reject_unknown_fields(body, _room_fields(body, version) | {"participants"})
    participants = _participants(body.get("participants"), version, allow_removal=False)
    return NewRoom(
        valid_from=_optional_time(body, "validFrom"),
        valid_until=_optional_time(body, "validUntil"),
        pstn_dial_out_enabled=bool(optional_bool(body, "pstnDialOutEnabled")) and has_pstn(version),
        participants={raw_id: role for raw_id, role in participants.items() if role is not None},
    )


def parse_room_changes(body: dict[str, Any], version: str) -> RoomChanges:
    reject_unknown_fields(body, _room_fields(body, version))
    pstn = optional_bool(body, "pstnDialOutEnabled")
    return RoomChanges(
        valid_from=_optional_time(body, "validFrom"),
        valid_until=_optional_time(body, "validUntil"),
        pstn_dial_out_enabled=pstn if has_pstn(version) else None,
    )


def parse_roster_changes(body: dict[str, Any], version: str) -> dict[str, Role | None]:
    reject_unknown_fields(body, {"participants"})
    return _participants(body.get("participants"), version, allow_removal=True)


def _optional_time(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    return None if value is None else parse_rfc3339(value, name)


def room_to_wire(room: Room) -> dict[str, Any]:
    # Times are datetimes, rendered by ``api.responses.dumps`` (orjson, in C).
    # ``pstnDialOutEnabled`` is sent in every version: the official SDK (1.2) requires it
    # whatever api-version it speaks, and older clients ignore fields they do not know.
    return {
        "id": room.id,
        "createdAt": from_micros(room.created_at),
        "validFrom": from_micros(room.valid_from),
        "validUntil": from_micros(room.valid_until),
        "pstnDialOutEnabled": room.pstn_dial_out_enabled,
    }


def participant_to_wire(participant: Participant) -> dict[str, Any]:
    return {"rawId": participant.raw_id, "role": participant.role.value}
