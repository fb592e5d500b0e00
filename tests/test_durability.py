"""No acknowledged write is lost: across a clean restart and a ``kill -9`` during a stream of writes."""

from __future__ import annotations

import threading
import time

import httpx
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import RoomsClient

from tests.servers import Server, signed

V = "api-version=2025-03-13"


def test_everything_survives_a_restart(fresh_server: Server) -> None:
    identity = CommunicationIdentityClient.from_connection_string(
        fresh_server.connection_string, connection_verify=fresh_server.ca_path
    )
    user = identity.create_user()
    revoked_token = identity.get_token(user, ["voip"]).token
    identity.revoke_tokens(user)
    room = signed(fresh_server, "POST", f"/rooms?{V}", {"participants": {user.raw_id: {"role": "Presenter"}}}).json()

    fresh_server.stop()
    fresh_server.start()

    rooms = RoomsClient.from_connection_string(fresh_server.connection_string, connection_verify=fresh_server.ca_path)
    assert rooms.get_room(room["id"]).valid_until == room["validUntil"]
    assert [(p.communication_identifier.raw_id, p.role) for p in rooms.list_participants(room["id"])] == [
        (user.raw_id, "Presenter")
    ]
    with fresh_server.client() as client:
        revoked = client.get("/access/tokenInfo", headers={"Authorization": f"Bearer {revoked_token}"})
    assert revoked.json()["error"]["code"] == "TokenRevoked"
    assert identity.get_token(user, ["voip"]).token  # the user itself survived


def test_kill_9_during_a_stream_of_writes_loses_no_acknowledged_write(fresh_server: Server) -> None:
    acknowledged: list[str] = []
    roster_acks: list[tuple[str, str]] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                response = signed(fresh_server, "POST", f"/rooms?{V}", {})
                if response.status_code == 201:
                    room_id = response.json()["id"]
                    acknowledged.append(room_id)
                    raw_id = f"8:acs:kill_{worker}_{n}"
                    patch = {"participants": {raw_id: {"role": "Consumer"}}}
                    if signed(fresh_server, "PATCH", f"/rooms/{room_id}/participants?{V}", patch).status_code == 200:
                        roster_acks.append((room_id, raw_id))
                n += 1
            except httpx.HTTPError:
                time.sleep(0.01)  # the server is down; keep trying until told to stop

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    fresh_server.kill()
    killed_with = len(acknowledged)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert killed_with > 20, "the stream of writes never got going"

    fresh_server.start()
    for room_id in acknowledged:
        assert signed(fresh_server, "GET", f"/rooms/{room_id}?{V}").status_code == 200, room_id
    for room_id, raw_id in roster_acks:
        roster = signed(fresh_server, "GET", f"/rooms/{room_id}/participants?{V}").json()["value"]
        assert {"rawId": raw_id, "role": "Consumer"} in roster
