"""What an SDK cannot express: malformed bodies, wrong types, unknown fields, huge bodies, versions."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import httpx
import pytest

from tests.servers import Server, signed

V = "api-version=2025-03-13"


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "target", "details"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    assert response.headers["x-ms-error-code"] == error["code"]
    return error


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"room"', b"\xff\xfe", b"null"])
def test_bad_json(server: Server, raw: bytes) -> None:
    response = signed(server, "POST", f"/rooms?{V}", raw=raw)
    assert response.status_code == 400
    assert _error(response)["code"] == "InvalidJson"


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"validFrom": 12}, "validFrom"),
        ({"validFrom": "tomorrow"}, "validFrom"),
        ({"validUntil": ["2030-01-01T00:00:00Z"]}, "validUntil"),
        ({"pstnDialOutEnabled": "yes"}, "pstnDialOutEnabled"),
        ({"participants": ["8:acs:a_1"]}, "participants"),
        ({"participants": {"8:acs:a_1": "Presenter"}}, "participants['8:acs:a_1']"),
        ({"participants": {"8:acs:a_1": {"role": 3}}}, "participants['8:acs:a_1'].role"),
        ({"participants": {"8:acs:a_1": {"role": "Presenter", "mute": True}}}, "mute"),
        ({"participants": {"8:acs:a_1": None}}, "participants['8:acs:a_1']"),
        ({"validUnitl": "2030-01-01T00:00:00Z"}, "validUnitl"),
    ],
)
def test_wrong_types_and_unknown_fields(server: Server, body: dict[str, Any], target: str) -> None:
    response = signed(server, "POST", f"/rooms?{V}", body)
    assert response.status_code == 400
    assert _error(response)["target"] == target


def test_identity_wrong_types(server: Server) -> None:
    for body, target in [
        ({"createTokenWithScopes": "voip"}, "createTokenWithScopes"),
        ({"createTokenWithScopes": ["voip"], "expiresInMinutes": "60"}, "expiresInMinutes"),
        ({"createTokenWithScopes": []}, "createTokenWithScopes"),
        ({"customId": "x"}, "customId"),
    ]:
        response = signed(server, "POST", "/identities?api-version=2023-10-01", body)
        assert response.status_code == 400, body
        assert _error(response)["target"] == target
    bad_id = signed(
        server, "POST", "/identities/not-an-id/:issueAccessToken?api-version=2023-10-01", {"scopes": ["voip"]}
    )
    assert bad_id.status_code == 400 and _error(bad_id)["message"] == "Invalid format for communication identifier."
    unknown = signed(server, "DELETE", "/identities/8:acs:nobody_1?api-version=2023-10-01")
    assert unknown.status_code == 404


def test_huge_body_is_refused_before_it_is_read(server: Server) -> None:
    huge = b'{"participants": {' + b" " * (2 * 1024 * 1024) + b"}}"
    response = signed(server, "POST", f"/rooms?{V}", raw=huge)
    assert response.status_code == 413
    assert _error(response)["code"] == "RequestEntityTooLarge"


@pytest.mark.parametrize("version", ["2020-01-01", "latest", "2025-03-13-preview", ""])
def test_unsupported_api_versions(server: Server, version: str) -> None:
    response = signed(server, "GET", f"/rooms?api-version={version}")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "UnsupportedApiVersion"
    assert "2023-06-14, 2024-04-15, 2025-03-13" in error["message"]


def test_missing_api_version(server: Server) -> None:
    response = signed(server, "GET", "/rooms")
    assert response.status_code == 400 and _error(response)["code"] == "MissingApiVersionParameter"


def test_sdk_paging_quirk_version_is_accepted(server: Server) -> None:
    for _ in range(2):
        assert signed(server, "POST", f"/rooms?{V}", {}).status_code == 201
    response = signed(server, "GET", "/rooms?api-version=ApiVersion.V2025_03_13&maxpagesize=1")
    assert response.status_code == 200
    assert "api-version=2025-03-13" in response.json()["nextLink"]


def test_bad_continuation_token(server: Server) -> None:
    # not base64 / a participants token / "r:abc" / "r:" + 24 digits (beyond a 64-bit integer)
    for token in ["garbage!!", "cDox", "cjphYmM", "cjo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"]:
        response = signed(server, "GET", f"/rooms?{V}&$skipToken={token}")
        assert response.status_code == 400, token
        assert _error(response)["target"] == "$skipToken"


def test_bad_page_size(server: Server) -> None:
    for size in ["0", "1001", "ten"]:
        assert signed(server, "GET", f"/rooms?{V}&maxpagesize={size}").status_code == 400


def test_unknown_route_and_method(server: Server) -> None:
    assert _error(signed(server, "GET", f"/nowhere?{V}"))["code"] == "NotFound"
    response = signed(server, "PUT", f"/rooms?{V}", {})
    assert response.status_code == 405 and _error(response)["code"] == "MethodNotAllowed"


def test_non_ascii_auth_headers_are_refused_not_crashed_on(server: Server) -> None:
    """Reachable without a key: compare_digest raised TypeError on non-ASCII str (500)."""
    for header, value in (("x-ms-content-sha256", "²²²"), ("Authorization", "HMAC-SHA256 Signature=²")):
        headers = {header: value.encode()}  # raw UTF-8 bytes on the wire
        response = signed(server, "GET", f"/rooms?{V}", headers=headers)
        assert response.status_code == 401, header
        _error(response)


@pytest.mark.parametrize(
    "path",
    [
        f"/rooms?{V}&maxpagesize=%C2%B2",
        f"/rooms?{V}&$skipToken=cjrCsg",
        f"/rooms?{V}&$skipToken=%C2%80",
        "/rooms/1%0A?" + V,
    ],
    ids=["unicode-digit-page-size", "unicode-digit-skip-token", "non-ascii-skip-token", "trailing-newline-id"],
)
def test_unicode_digits_and_trailing_newlines_are_bad_requests(server: Server, path: str) -> None:
    response = signed(server, "GET", path)
    assert response.status_code == 400, response.text
    _error(response)


@pytest.mark.parametrize("moment", ["2027-W10-1", "20270308T0710", "2027-03-08", " 2027-03-08T07:10:00Z"])
def test_dates_that_are_not_rfc_3339_are_refused(server: Server, moment: str) -> None:
    response = signed(server, "POST", f"/rooms?{V}", {"validFrom": moment})
    assert response.status_code == 400
    assert _error(response)["target"] == "validFrom"


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/json; charset=latin-1"])
def test_a_body_that_does_not_say_it_is_json_is_refused(server: Server, content_type: str | None) -> None:
    room = signed(server, "POST", f"/rooms?{V}", {}).json()
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    response = signed(server, "PATCH", f"/rooms/{room['id']}?{V}", {"pstnDialOutEnabled": True}, headers=headers)
    assert response.status_code == 415
    assert _error(response)["code"] == "UnsupportedMediaType"
    assert signed(server, "GET", f"/rooms/{room['id']}?{V}").json()["pstnDialOutEnabled"] is False  # not applied


def test_merge_patch_json_is_json(server: Server) -> None:
    room = signed(server, "POST", f"/rooms?{V}", {}).json()
    headers = {"Content-Type": "application/merge-patch+json"}
    response = signed(server, "PATCH", f"/rooms/{room['id']}?{V}", {"pstnDialOutEnabled": True}, headers=headers)
    assert response.status_code == 200 and response.json()["pstnDialOutEnabled"] is True


def test_errors_do_not_echo_huge_values(server: Server) -> None:
    huge = "9" * 500_000
    bodies: list[dict[str, Any]] = [{"validFrom": huge}, {huge: 1}, {"participants": {huge: {}}}]
    for body in bodies:
        response = signed(server, "POST", f"/rooms?{V}", body)
        assert response.status_code == 400
        assert len(response.content) < 4096, len(response.content)


def test_request_id_is_the_operation_logs_correlation_id(fresh_server: Server) -> None:
    response = signed(fresh_server, "POST", f"/rooms?{V}", {})
    request_id = response.headers["x-ms-request-id"]
    fresh_server.stop()  # flushes the operation log
    records = [json.loads(line) for line in fresh_server.cli("oplog").stdout.splitlines()]
    assert [r["correlation_id"] for r in records] == [request_id]


def test_clients_that_drop_mid_body_are_not_logged_as_errors(server: Server) -> None:
    """Without a key: 3,800 of these once grew the log by 22 MB of tracebacks."""
    before = server.log_path.stat().st_size
    context = ssl.create_default_context(cafile=server.ca_path)
    head = f"POST /rooms?{V} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
    for _ in range(20):
        raw = socket.create_connection(("127.0.0.1", server.port))
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(head.encode() + b'{"participants": {')
    assert signed(server, "GET", f"/rooms?{V}").status_code == 200  # the server has read every drop by now
    logged = server.log_path.read_bytes()[before:]
    assert b"Traceback" not in logged and b"unhandled error" not in logged, logged[-2000:]


def test_nul_characters_and_long_values_do_not_poison_the_operation_log(fresh_server: Server) -> None:
    """PostgreSQL refuses NUL in text: one such room id in a path once failed every later
    batch of operation-log records."""
    assert signed(fresh_server, "GET", f"/rooms/1%00{'9' * 100}?{V}").status_code == 400
    assert signed(fresh_server, "GET", "/rooms?api-version=2025-03-13%00").status_code == 400
    created = signed(fresh_server, "POST", f"/rooms?{V}", {})
    fresh_server.stop()  # flushes the operation log
    records = [json.loads(line) for line in fresh_server.cli("oplog").stdout.splitlines()]
    assert [r["operation_name"] for r in records] == ["GetRoom", "ListRooms", "CreateRoom"]
    assert records[0]["room_id"] == "1\ufffd" + "9" * 30
    assert records[2]["room_id"] == created.json()["id"]
