"""The service's rules: validity windows, ids, roles, roster limits; ACS-shaped errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.rooms import ParticipantRole, RoomParticipant, RoomsClient
from azure.core.exceptions import HttpResponseError

from tests.servers import Server, signed

NOW = datetime.now(UTC)
V = "api-version=2025-03-13"


def _response(info: pytest.ExceptionInfo[HttpResponseError]) -> Any:
    # Typed by azure-core as a protocol without json() and headers, which it has at run time.
    assert info.value.response is not None
    return info.value.response


def _error(info: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int, str, str | None]:
    body = _response(info).json()["error"]
    assert _response(info).headers["x-ms-error-code"] == body["code"]
    assert info.value.status_code is not None
    return info.value.status_code, body["code"], body["target"]


def _assert_bad_argument(info: pytest.ExceptionInfo[HttpResponseError], target: str) -> None:
    status, code, got_target = _error(info)
    assert (status, code, got_target) == (400, "BadRequest", target)
    details = _response(info).json()["error"]["details"]
    assert details[0]["code"] == "BadArgument" and details[0]["target"] == target


@pytest.mark.parametrize(
    ("kwargs", "target"),
    [
        ({"valid_from": NOW + timedelta(days=1), "valid_until": NOW + timedelta(days=182)}, "validUntil"),
        ({"valid_from": NOW + timedelta(days=181)}, "validFrom"),
        ({"valid_until": NOW - timedelta(minutes=1)}, "validUntil"),
        ({"valid_from": NOW + timedelta(days=2), "valid_until": NOW + timedelta(days=1)}, "validUntil"),
        ({"valid_from": NOW + timedelta(days=2), "valid_until": NOW + timedelta(days=2)}, "validUntil"),
    ],
)
def test_create_window_rules(rooms: RoomsClient, kwargs: dict[str, Any], target: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        rooms.create_room(**kwargs)
    _assert_bad_argument(info, target)


def test_window_of_exactly_180_days_is_allowed(rooms: RoomsClient) -> None:
    start = NOW + timedelta(days=1)
    room = rooms.create_room(valid_from=start, valid_until=start + timedelta(days=180))
    assert room.id


def test_patch_is_checked_against_the_stored_other_end(rooms: RoomsClient) -> None:
    start = (NOW + timedelta(days=10)).replace(microsecond=0)
    room = rooms.create_room(valid_from=start, valid_until=start + timedelta(days=1))
    with pytest.raises(HttpResponseError) as info:
        rooms.update_room(room_id=room.id, valid_from=start + timedelta(days=2))
    _assert_bad_argument(info, "validFrom")
    with pytest.raises(HttpResponseError) as info:
        rooms.update_room(room_id=room.id, valid_until=start + timedelta(days=181))
    _assert_bad_argument(info, "validUntil")
    # Nothing was changed by the refused PATCHes.
    again = rooms.get_room(room.id)
    assert (again.valid_from, again.valid_until) == (room.valid_from, room.valid_until)
    moved = rooms.update_room(room_id=room.id, valid_from=start - timedelta(days=5))
    assert moved.valid_until == room.valid_until


def test_malformed_and_unknown_room_ids(server: Server) -> None:
    bad = signed(server, "GET", f"/rooms/not-a-room?{V}")
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "roomId"
    missing = signed(server, "GET", f"/rooms/12345678901234567?{V}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    patch_missing = signed(server, "PATCH", f"/rooms/12345678901234567/participants?{V}", {"participants": {}})
    assert patch_missing.status_code == 404


@pytest.mark.parametrize("raw_id", ["4:+14255550123", "8:orgid:1234", "acs:abc", "8:acs:", "8:acs:a b", ""])
def test_raw_ids_are_validated(rooms: RoomsClient, raw_id: str) -> None:
    room = rooms.create_room()
    with pytest.raises(HttpResponseError) as info:
        rooms.add_or_update_participants(
            room_id=room.id,
            participants=[RoomParticipant(communication_identifier=CommunicationUserIdentifier(raw_id))],
        )
    status, _, target = _error(info)
    assert status == 400 and target == f"participants['{raw_id}']"
    assert _response(info).json()["error"]["message"] == "Invalid format for communication identifier."


def test_unknown_role_names_the_field(server: Server) -> None:
    created = signed(server, "POST", f"/rooms?{V}", {"participants": {"8:acs:x_1": {"role": "Guest"}}})
    assert created.status_code == 400
    error = created.json()["error"]
    assert error["target"] == "participants['8:acs:x_1'].role"
    assert "Guest" in error["message"] and "Presenter" in error["message"]


def test_roster_size_limit(tmp_path: Any) -> None:
    limited = Server(tmp_path, tls=False, extra_env={"VROOMS_MAX_ROOM_PARTICIPANTS": "3"}).start()
    try:
        people = {f"8:acs:limit_{i}": {"role": "Attendee"} for i in range(4)}
        too_many = signed(limited, "POST", f"/rooms?{V}", {"participants": people})
        assert too_many.status_code == 400 and too_many.json()["error"]["target"] == "participants"
        assert "at most 3" in too_many.json()["error"]["message"]
        room = signed(limited, "POST", f"/rooms?{V}", {"participants": dict(list(people.items())[:3])}).json()
        over = signed(
            limited, "PATCH", f"/rooms/{room['id']}/participants?{V}", {"participants": {"8:acs:limit_9": {}}}
        )
        assert over.status_code == 400
        # A change that replaces one member with another stays within the limit.
        swap = {"8:acs:limit_0": None, "8:acs:limit_9": {"role": "Consumer"}}
        assert (
            signed(limited, "PATCH", f"/rooms/{room['id']}/participants?{V}", {"participants": swap}).status_code == 200
        )
        # Removals never make a roster bigger: more of them than two full rosters is fine.
        removals: dict[str, None] = {f"8:acs:limit_{i}": None for i in range(10)}
        emptied = signed(limited, "PATCH", f"/rooms/{room['id']}/participants?{V}", {"participants": removals})
        assert emptied.status_code == 200, emptied.text
        assert signed(limited, "GET", f"/rooms/{room['id']}/participants?{V}").json()["value"] == []
    finally:
        limited.stop()


def test_a_patch_naming_more_ids_than_one_sql_statement_takes(server: Server) -> None:
    """40,000 ids (SQLite and asyncpg take at most 32,766 / 32,767 parameters per statement)."""
    room = signed(server, "POST", f"/rooms?{V}", {"participants": {"8:acs:many_keep": {}}}).json()
    removals: dict[str, None] = {f"8:acs:many_{i}": None for i in range(40_000)}
    response = signed(server, "PATCH", f"/rooms/{room['id']}/participants?{V}", {"participants": removals})
    assert response.status_code == 200, response.text[:300]
    roster = signed(server, "GET", f"/rooms/{room['id']}/participants?{V}").json()["value"]
    assert [p["rawId"] for p in roster] == ["8:acs:many_keep"]


def test_collaborator_only_from_2025_03_13(server: Server) -> None:
    body = {"participants": {"8:acs:collab_1": {"role": "Collaborator"}}}
    assert signed(server, "POST", "/rooms?api-version=2024-04-15", body).status_code == 400
    assert signed(server, "POST", "/rooms?api-version=2025-03-13", body).status_code == 201


def test_pstn_field_needs_2024_04_15(server: Server) -> None:
    refused = signed(server, "POST", "/rooms?api-version=2023-06-14", {"pstnDialOutEnabled": True})
    assert refused.status_code == 400 and refused.json()["error"]["target"] == "pstnDialOutEnabled"
    # What the SDK always sends is accepted in every version.
    assert signed(server, "POST", "/rooms?api-version=2023-06-14", {"pstnDialOutEnabled": False}).status_code == 201


def test_role_change_keeps_one_row(rooms: RoomsClient) -> None:
    user = CommunicationUserIdentifier("8:acs:rolechange_1")
    room = rooms.create_room(participants=[RoomParticipant(communication_identifier=user)])
    rooms.add_or_update_participants(
        room_id=room.id, participants=[RoomParticipant(communication_identifier=user, role=ParticipantRole.CONSUMER)]
    )
    assert [(p.communication_identifier.raw_id, p.role) for p in rooms.list_participants(room.id)] == [
        (user.raw_id, "Consumer")
    ]


def test_oversized_roster_patch_is_refused_up_front(server: Server) -> None:
    room = signed(server, "POST", f"/rooms?{V}", {}).json()
    crowd = {f"8:acs:crowd_{i}": {"role": "Attendee"} for i in range(2001)}
    response = signed(server, "PATCH", f"/rooms/{room['id']}/participants?{V}", {"participants": crowd})
    assert response.status_code == 400 and response.json()["error"]["target"] == "participants"
