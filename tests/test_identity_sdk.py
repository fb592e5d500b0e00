"""The Identity API through the official SDK (azure-communication-identity 1.5), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.rooms import RoomParticipant, RoomsClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.servers import Server


def token_info(server: Server, token: str) -> httpx.Response:
    with server.client() as client:
        return client.get("/access/tokenInfo", headers={"Authorization": f"Bearer {token}"})


def _expires(value: object) -> datetime:
    # The SDK declares an int (AccessToken's epoch seconds); the Identity SDK hands over the
    # wire's RFC 3339 string.
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def test_create_user_and_tokens(server: Server, identity: CommunicationIdentityClient) -> None:
    user = identity.create_user()
    assert user.raw_id.startswith("8:acs:")
    token = identity.get_token(user, [CommunicationTokenScope.VOIP, CommunicationTokenScope.CHAT])
    remaining = _expires(token.expires_on) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < remaining <= timedelta(hours=24)
    info = token_info(server, token.token)
    assert info.status_code == 200
    assert info.json()["identity"]["id"] == user.raw_id
    assert info.json()["scopes"] == ["voip", "chat"]

    short = identity.get_token(user, ["voip.join"], token_expires_in=timedelta(minutes=60))
    assert _expires(short.expires_on) - datetime.now(UTC) <= timedelta(minutes=60)

    other, with_token = identity.create_user_and_token(["voip"], token_expires_in=timedelta(hours=2))
    assert token_info(server, with_token.token).json()["identity"]["id"] == other.raw_id


@pytest.mark.parametrize("minutes", [59, 1441])
def test_token_lifetime_limits(identity: CommunicationIdentityClient, minutes: int) -> None:
    user = identity.create_user()
    with pytest.raises(HttpResponseError) as info:
        identity.get_token(user, ["voip"], token_expires_in=timedelta(minutes=minutes))
    assert info.value.status_code == 400
    assert info.value.error is not None and info.value.error.code == "BadRequest"
    assert "expiresInMinutes" in info.value.message


def test_unknown_scope_is_refused(identity: CommunicationIdentityClient) -> None:
    user = identity.create_user()
    with pytest.raises(HttpResponseError) as info:
        identity.get_token(user, ["teleport"])
    assert info.value.status_code == 400 and "teleport" in info.value.message


def test_revoke_stops_every_earlier_token(server: Server, identity: CommunicationIdentityClient) -> None:
    user = identity.create_user()
    tokens = [identity.get_token(user, ["voip"]).token for _ in range(3)]
    assert all(token_info(server, t).status_code == 200 for t in tokens)
    identity.revoke_tokens(user)
    for t in tokens:
        refused = token_info(server, t)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "TokenRevoked"
    fresh = identity.get_token(user, ["voip"]).token
    assert token_info(server, fresh).status_code == 200


def test_delete_user(server: Server, identity: CommunicationIdentityClient, rooms: RoomsClient) -> None:
    user, token = identity.create_user_and_token(["voip"])
    kept = identity.create_user()
    room = rooms.create_room(
        participants=[RoomParticipant(communication_identifier=user), RoomParticipant(communication_identifier=kept)]
    )
    other_room = rooms.create_room(participants=[RoomParticipant(communication_identifier=user)])
    identity.delete_user(user)
    assert token_info(server, token.token).json()["error"]["code"] == "IdentityDeleted"
    assert [p.communication_identifier.raw_id for p in rooms.list_participants(room.id)] == [kept.raw_id]
    assert list(rooms.list_participants(other_room.id)) == []
    with pytest.raises(ResourceNotFoundError):
        identity.get_token(user, ["voip"])
    with pytest.raises(ResourceNotFoundError):
        identity.delete_user(user)


def test_forged_and_expired_tokens(server: Server, identity: CommunicationIdentityClient) -> None:
    user = identity.create_user()
    token = identity.get_token(user, ["voip"]).token
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    assert token_info(server, forged).json()["error"]["code"] == "TokenInvalid"
    assert token_info(server, "not-a-jwt").status_code == 401
    with server.client() as client:
        assert client.get("/access/tokenInfo").json()["error"]["code"] == "TokenMissing"


def test_expired_token_is_refused(server: Server, identity: CommunicationIdentityClient) -> None:
    import time

    import jwt

    from vrooms.auth.tokens import load_or_create_resource_id, load_or_create_signing_key

    user = identity.create_user()
    key = load_or_create_signing_key(server.data_dir)
    claims = {
        "skypeid": user.raw_id.removeprefix("8:"),
        "exp": int(time.time()) - 5,
        "gen": 0,
        "acsScope": "voip",
        "resourceId": load_or_create_resource_id(server.data_dir),
    }
    expired = jwt.encode(claims, key, algorithm="EdDSA")
    assert token_info(server, expired).json()["error"]["code"] == "TokenExpired"
    claims["exp"] = int(time.time()) + 600
    assert token_info(server, jwt.encode(claims, key, algorithm="EdDSA")).status_code == 200


def test_teams_token_exchange_says_there_is_no_teams_federation(identity: CommunicationIdentityClient) -> None:
    with pytest.raises(HttpResponseError) as refused:
        identity.get_token_for_teams_user("entra-token", "app-id", "user-object-id")
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "TeamsFederationNotConfigured"
    assert "POST /identities" in str(refused.value.message)
