"""Every Rooms operation through the official SDK (azure-communication-rooms 1.2), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.communication.rooms import ParticipantRole, RoomParticipant, RoomsClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.servers import Server


def _user(identity: CommunicationIdentityClient) -> CommunicationUserIdentifier:
    return identity.create_user()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_room_defaults(rooms: RoomsClient) -> None:
    before = datetime.now(UTC)
    room = rooms.create_room()
    assert room.id.isdigit() and len(room.id) >= 17
    valid_from, valid_until = _parse(room.valid_from), _parse(room.valid_until)
    assert before - timedelta(seconds=1) <= valid_from <= datetime.now(UTC)
    assert valid_until - valid_from == timedelta(days=180)
    assert room.pstn_dial_out_enabled is False
    assert _parse(room.created_at) == valid_from


def test_create_get_update_delete(rooms: RoomsClient, identity: CommunicationIdentityClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    presenter, attendee = _user(identity), _user(identity)
    room = rooms.create_room(
        valid_from=start,
        valid_until=start + timedelta(days=2),
        pstn_dial_out_enabled=True,
        participants=[
            RoomParticipant(communication_identifier=presenter, role=ParticipantRole.PRESENTER),
            RoomParticipant(communication_identifier=attendee),
        ],
    )
    assert _parse(room.valid_from) == start
    assert room.pstn_dial_out_enabled is True

    fetched = rooms.get_room(room.id)
    assert (fetched.id, fetched.valid_from, fetched.valid_until) == (room.id, room.valid_from, room.valid_until)

    updated = rooms.update_room(room_id=room.id, valid_until=start + timedelta(days=5))
    assert _parse(updated.valid_until) == start + timedelta(days=5)
    assert updated.valid_from == room.valid_from  # null in the PATCH means unchanged
    assert updated.pstn_dial_out_enabled is True
    toggled = rooms.update_room(room_id=room.id, pstn_dial_out_enabled=False)
    assert toggled.pstn_dial_out_enabled is False and toggled.valid_until == updated.valid_until

    roles = {p.communication_identifier.raw_id: p.role for p in rooms.list_participants(room.id)}
    assert roles == {presenter.raw_id: ParticipantRole.PRESENTER, attendee.raw_id: ParticipantRole.ATTENDEE}

    rooms.delete_room(room.id)
    with pytest.raises(ResourceNotFoundError):
        rooms.get_room(room.id)
    with pytest.raises(ResourceNotFoundError):
        rooms.delete_room(room.id)


def test_roster_merge_patch(rooms: RoomsClient, identity: CommunicationIdentityClient) -> None:
    room = rooms.create_room()
    a, b, c = _user(identity), _user(identity), _user(identity)
    rooms.add_or_update_participants(
        room_id=room.id,
        participants=[
            RoomParticipant(communication_identifier=a, role=ParticipantRole.PRESENTER),
            RoomParticipant(communication_identifier=b, role=ParticipantRole.CONSUMER),
        ],
    )
    rooms.add_or_update_participants(
        room_id=room.id,
        participants=[
            RoomParticipant(communication_identifier=b, role=ParticipantRole.COLLABORATOR),
            RoomParticipant(communication_identifier=c, role=ParticipantRole.ATTENDEE),
        ],
    )
    roles = {p.communication_identifier.raw_id: p.role for p in rooms.list_participants(room.id)}
    assert roles == {a.raw_id: "Presenter", b.raw_id: "Collaborator", c.raw_id: "Attendee"}
    rooms.remove_participants(room_id=room.id, participants=[a, c])
    remaining = [(p.communication_identifier.raw_id, p.role) for p in rooms.list_participants(room.id)]
    assert remaining == [(b.raw_id, "Collaborator")]
    # Removing someone who is not on the roster is a no-op, as in ACS.
    rooms.remove_participants(room_id=room.id, participants=[a])


def test_participants_paging(server: Server, rooms: RoomsClient) -> None:
    room = rooms.create_room()
    users = [CommunicationUserIdentifier(f"8:acs:paging_{i:04d}") for i in range(250)]
    rooms.add_or_update_participants(
        room_id=room.id, participants=[RoomParticipant(communication_identifier=u) for u in users]
    )
    listed = [p.communication_identifier.raw_id for p in rooms.list_participants(room.id)]
    assert sorted(listed) == sorted(u.raw_id for u in users)  # more than one page (100 each)
    assert len(set(listed)) == 250


def test_list_rooms_follows_next_links(rooms: RoomsClient) -> None:
    created = {rooms.create_room().id for _ in range(120)}
    listed = [room.id for room in rooms.list_rooms()]
    assert created <= set(listed)
    assert len(listed) == len(set(listed))


def test_old_api_versions(server: Server) -> None:
    old = RoomsClient.from_connection_string(
        server.connection_string, connection_verify=server.ca_path, api_version="2023-06-14"
    )
    room = old.create_room()
    assert old.get_room(room.id).id == room.id
    v2024 = RoomsClient.from_connection_string(
        server.connection_string, connection_verify=server.ca_path, api_version="2024-04-15"
    )
    with pytest.raises(HttpResponseError) as info:
        v2024.add_or_update_participants(
            room_id=room.id,
            participants=[
                RoomParticipant(
                    communication_identifier=CommunicationUserIdentifier("8:acs:x_1"),
                    role=ParticipantRole.COLLABORATOR,
                )
            ],
        )
    assert info.value.status_code == 400
    assert "Collaborator" in info.value.message


def test_plain_http_constructor(http_server: Server) -> None:
    client = RoomsClient(http_server.endpoint, AzureKeyCredential(http_server.key))
    room = client.create_room(pstn_dial_out_enabled=True)
    assert client.get_room(room.id).pstn_dial_out_enabled is True
    identity = CommunicationIdentityClient(http_server.endpoint, AzureKeyCredential(http_server.key))
    user, token = identity.create_user_and_token(["voip"])
    assert user.raw_id.startswith("8:acs:") and token.token.count(".") == 2
