"""The CLI's admin commands, and the operation log written by API calls and queried from the CLI."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.servers import Server, eventually, signed

V = "api-version=2025-03-13"


def _log(server: Server, *args: str) -> list[dict[str, Any]]:
    out = server.cli("oplog", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_operation_log_records_each_call(fresh_server: Server) -> None:
    room = signed(
        fresh_server,
        "POST",
        f"/rooms?{V}",
        {"participants": {"8:acs:log_1": {"role": "Presenter"}, "8:acs:log_2": {"role": "Consumer"}}},
        headers={"x-ms-client-request-id": "corr-123"},
    ).json()
    room_id = room["id"]
    signed(fresh_server, "GET", f"/rooms/{room_id}?{V}")
    signed(fresh_server, "PATCH", f"/rooms/{room_id}?{V}", {"pstnDialOutEnabled": True})
    signed(fresh_server, "PATCH", f"/rooms/{room_id}/participants?{V}", {"participants": {"8:acs:log_3": {}}})
    signed(
        fresh_server,
        "PATCH",
        f"/rooms/{room_id}/participants?{V}",
        {"participants": {"8:acs:log_3": {"role": "Presenter"}}},
    )
    signed(fresh_server, "PATCH", f"/rooms/{room_id}/participants?{V}", {"participants": {"8:acs:log_1": None}})
    signed(fresh_server, "GET", f"/rooms/{room_id}/participants?{V}")
    signed(fresh_server, "GET", f"/rooms?{V}")
    signed(fresh_server, "GET", f"/rooms/{room_id}?api-version=2024-04-15", key="c2VjcmV0")  # 401: not logged
    signed(fresh_server, "PATCH", f"/rooms/{room_id}?{V}", {"validUntil": "2001-01-01T00:00:00Z"})
    signed(fresh_server, "DELETE", f"/rooms/{room_id}?{V}")

    def all_nine() -> list[dict[str, Any]]:  # records are flushed in batches every 0.2 s
        records = _log(fresh_server, "--room", room_id)
        return records if len(records) == 9 else []

    records = eventually(all_nine)
    names = [r["operation_name"] for r in records]
    assert names == [
        "CreateRoom",
        "GetRoom",
        "PatchRoom",
        "AddParticipants",
        "UpdateParticipants",
        "RemoveParticipants",
        "GetParticipants",
        "PatchRoom",
        "DeleteRoom",
    ]
    create = records[0]
    assert create["correlation_id"] == "corr-123"
    assert create["operation_version"] == "2025-03-13"
    assert create["result_type"] == "Succeeded" and create["result_signature"] == 201
    assert create["participants_count"] == 2 and create["presenter_count"] == 1 and create["consumer_count"] == 1
    assert create["room_lifespan"] == 180 * 24 * 60
    assert records[2]["pstn_dial_out_enabled"] is True
    assert records[3]["added_participants_count"] == 1 and records[3]["attendee_count"] == 1
    assert records[4]["upserted_participants_count"] == 1 and records[4]["presenter_count"] == 2
    assert records[5]["removed_participants_count"] == 1 and records[5]["participants_count"] == 2
    failed = records[7]
    assert (failed["result_type"], failed["result_signature"], failed["level"]) == ("Failed", 400, "Warning")
    assert "past" in failed["error_message"]

    assert [r["operation_name"] for r in _log(fresh_server, "--operation", "ListRooms")] == ["ListRooms"]
    assert _log(fresh_server, "--room", room_id, "--since", "2999-01-01T00:00:00Z") == []
    assert len(_log(fresh_server, "--room", room_id, "--until", "2999-01-01T00:00:00Z")) == 9


def test_admin_commands(fresh_server: Server) -> None:
    user = json.loads(fresh_server.cli("users", "create", "--scopes", "voip").stdout)
    user_id = user["identity"]["id"]
    assert user["accessToken"]["token"].count(".") == 2
    room = json.loads(fresh_server.cli("rooms", "create", "--participant", f"{user_id}=Presenter").stdout)
    shown = json.loads(fresh_server.cli("rooms", "show", room["id"]).stdout)
    assert shown["participants"] == [{"rawId": user_id, "role": "Presenter"}]
    other = json.loads(fresh_server.cli("users", "create").stdout)["identity"]["id"]
    roster = json.loads(
        fresh_server.cli("rooms", "participants", room["id"], "--set", f"{other}=Consumer", "--remove", user_id).stdout
    )
    assert roster == [{"rawId": other, "role": "Consumer"}]
    listed = json.loads(fresh_server.cli("rooms", "list").stdout)
    assert [r["id"] for r in listed] == [room["id"]]
    # What the CLI wrote, the API serves.
    assert signed(fresh_server, "GET", f"/rooms/{room['id']}?{V}").json()["id"] == room["id"]
    token = json.loads(fresh_server.cli("token", user_id, "--scopes", "voip,chat", "--minutes", "60").stdout)
    with fresh_server.client() as client:
        info = client.get("/access/tokenInfo", headers={"Authorization": f"Bearer {token['token']}"}).json()
    assert info["scopes"] == ["voip", "chat"]
    fresh_server.cli("rooms", "delete", room["id"])
    assert signed(fresh_server, "GET", f"/rooms/{room['id']}?{V}").status_code == 404
    # The CLI's changes are in the operation log too, newest last; --limit keeps the newest.
    every = _log(fresh_server, "--room", room["id"])
    logged = [r["operation_name"] for r in every if r["correlation_id"].startswith("cli-")]
    assert logged == ["CreateRoom", "AddParticipants", "DeleteRoom"]
    assert len(every) > 2 and _log(fresh_server, "--room", room["id"], "--limit", "2") == every[-2:]
    # Storage flags work after the command as well as before it.
    after = fresh_server.command("rooms", "list")
    flags = after[3:5] + (after[5:7] if fresh_server.database_url else [])
    moved = [*after[:3], *after[len(flags) + 3 :], *flags]
    assert json.loads(subprocess.run(moved, capture_output=True, text=True, check=True).stdout) == []


def test_cli_errors_say_what_to_do(fresh_server: Server) -> None:
    missing = fresh_server.cli("rooms", "show", "12345678901234567", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad_role = fresh_server.cli("rooms", "create", "--participant", "8:acs:x_1=Boss", check=False)
    assert bad_role.returncode == 1 and "allowed: Presenter" in bad_role.stderr
    bad_pair = fresh_server.cli("rooms", "create", "--participant", "8:acs:x_1", check=False)
    assert bad_pair.returncode != 0 and "RAWID=ROLE" in bad_pair.stderr
    unknown = fresh_server.cli("rooms", "create", "--participant", "8:acs:nobody_1=Presenter", check=False)
    assert unknown.returncode == 1 and "no such user: 8:acs:nobody_1" in unknown.stderr
    bad_token = fresh_server.cli("token", "8:acs:nobody_1", "--minutes", "5", check=False)
    assert bad_token.returncode == 1 and "expiresInMinutes" in bad_token.stderr


def test_keys_show(fresh_server: Server) -> None:
    keys = json.loads(fresh_server.cli("keys", "show", "--endpoint", fresh_server.endpoint + "/").stdout)
    assert keys["primaryConnectionString"] == fresh_server.connection_string
    # Without --endpoint: the port the server runs on, not the default 8443.
    keys = json.loads(fresh_server.cli("keys", "show").stdout)
    assert keys["primaryConnectionString"] == fresh_server.connection_string
