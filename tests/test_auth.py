"""HMAC authentication: every kind of tampering is 401; keys rotate without downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.communication.rooms import RoomsClient
from azure.core.exceptions import ClientAuthenticationError

from tests.servers import Server, eventually, signed, signed_headers

V = "api-version=2025-03-13"
OTHER_KEY = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"


def _denied(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Denied"


def test_valid_signature_passes(server: Server) -> None:
    assert signed(server, "GET", f"/ping?{V}").status_code == 200


def test_wrong_key(server: Server) -> None:
    _denied(signed(server, "GET", f"/rooms?{V}", key=OTHER_KEY))


def test_altered_body(server: Server) -> None:
    url = f"{server.endpoint}/rooms?{V}"
    headers = signed_headers(server.key, "POST", url, b'{"pstnDialOutEnabled": false}')
    with server.client() as client:
        _denied(client.post(url, content=b'{"pstnDialOutEnabled": true}', headers=headers))


def test_body_hash_matching_a_forged_body_still_fails_the_signature(server: Server) -> None:
    from vrooms.auth.hmac import content_hash

    url = f"{server.endpoint}/rooms?{V}"
    headers = signed_headers(server.key, "POST", url, b"{}")
    forged = b'{"pstnDialOutEnabled": true}'
    headers["x-ms-content-sha256"] = content_hash(forged)
    with server.client() as client:
        _denied(client.post(url, content=forged, headers=headers))


@pytest.mark.parametrize("minutes", [-16, 16])
def test_stale_or_future_date(server: Server, minutes: int) -> None:
    response = signed(server, "GET", f"/rooms?{V}", date=datetime.now(UTC) + timedelta(minutes=minutes))
    _denied(response)
    assert "clock" in response.json()["error"]["message"]


def test_date_within_skew_passes(server: Server) -> None:
    assert signed(server, "GET", f"/rooms?{V}", date=datetime.now(UTC) - timedelta(minutes=14)).status_code == 200


def test_signature_for_another_path(server: Server) -> None:
    _denied(signed(server, "DELETE", f"/rooms/12345678901234567?{V}", sign_target=f"/rooms/76543210987654321?{V}"))
    _denied(signed(server, "GET", f"/rooms?{V}", sign_target="/rooms?api-version=2024-04-15"))


def test_signature_for_another_host(server: Server) -> None:
    _denied(signed(server, "GET", f"/rooms?{V}", host="evil.example:443"))


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer abc", "HMAC-SHA256 Signature=abc", "HMAC-SHA256 SignedHeaders=host&Signature=abc"],
)
def test_malformed_authorization(server: Server, authorization: str) -> None:
    _denied(signed(server, "GET", f"/rooms?{V}", headers={"Authorization": authorization}))


def test_missing_headers(server: Server) -> None:
    for name in ("x-ms-date", "x-ms-content-sha256"):
        url = f"{server.endpoint}/rooms?{V}"
        headers = signed_headers(server.key, "GET", url)
        del headers[name]
        with server.client() as client:
            _denied(client.get(url, headers=headers))


def test_errors_before_authentication_leak_nothing(server: Server) -> None:
    with server.client() as client:
        _denied(client.get("/rooms/12345678901234567?api-version=1999-01-01"))


def test_sdk_with_wrong_key(server: Server) -> None:
    bad = f"endpoint={server.endpoint}/;accesskey={OTHER_KEY}"
    with pytest.raises(ClientAuthenticationError):
        RoomsClient.from_connection_string(bad, connection_verify=server.ca_path).get_room("12345678901234567")


def test_key_rotation_without_downtime(fresh_server: Server) -> None:
    old = fresh_server.keys
    client_on_secondary = RoomsClient.from_connection_string(
        f"endpoint={fresh_server.endpoint}/;accesskey={old['secondary']}", connection_verify=fresh_server.ca_path
    )
    room = client_on_secondary.create_room()
    fresh_server.cli("keys", "rotate", "primary")
    new = fresh_server.keys
    assert new["primary"] != old["primary"] and new["secondary"] == old["secondary"]
    # Servers re-read the key file at most once a second.
    eventually(lambda: signed(fresh_server, "GET", f"/rooms/{room.id}?{V}", key=new["primary"]).status_code == 200)
    assert client_on_secondary.get_room(room.id).id == room.id
    _denied(signed(fresh_server, "GET", f"/rooms/{room.id}?{V}", key=old["primary"]))
