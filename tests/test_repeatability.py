"""Repeatable POST /rooms: the ACS table of outcomes, and no double creation across a restart."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from tests.servers import Server, signed

V = "api-version=2025-03-13"


def _headers(request_id: str | None, first_sent: datetime | str | None) -> dict[str, str]:
    headers = {}
    if request_id is not None:
        headers["Repeatability-Request-Id"] = request_id
    if first_sent is not None:
        headers["Repeatability-First-Sent"] = (
            first_sent if isinstance(first_sent, str) else format_datetime(first_sent, usegmt=True)
        )
    return headers


def _count_rooms(server: Server) -> int:
    count, link = 0, f"/rooms?{V}&maxpagesize=1000"
    while link:
        page = signed(server, "GET", link).json()
        count += len(page["value"])
        link = page.get("nextLink", "").removeprefix(server.endpoint)
    return count


def test_repeat_returns_the_first_response(server: Server) -> None:
    headers = _headers(str(uuid.uuid4()), datetime.now(UTC))
    body = {"pstnDialOutEnabled": True}
    before = _count_rooms(server)
    first = signed(server, "POST", f"/rooms?{V}", body, headers=headers)
    again = signed(server, "POST", f"/rooms?{V}", body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.headers["Repeatability-Result"] == again.headers["Repeatability-Result"] == "accepted"
    assert _count_rooms(server) == before + 1


def test_concurrent_repeats_create_once(server: Server) -> None:
    headers = _headers(str(uuid.uuid4()), datetime.now(UTC))
    before = _count_rooms(server)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: signed(server, "POST", f"/rooms?{V}", {}, headers=headers), range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert _count_rooms(server) == before + 1


def test_same_id_for_another_request_is_rejected(server: Server) -> None:
    headers = _headers(str(uuid.uuid4()), datetime.now(UTC))
    assert signed(server, "POST", f"/rooms?{V}", {}, headers=headers).status_code == 201
    other = signed(server, "POST", f"/rooms?{V}", {"pstnDialOutEnabled": True}, headers=headers)
    assert other.status_code == 400
    assert other.headers["Repeatability-Result"] == "rejected"


def test_header_rules(server: Server) -> None:
    now = datetime.now(UTC)
    cases = [
        (_headers("not-a-guid", now), 400),
        (_headers(str(uuid.uuid4()), "yesterday"), 400),
        (_headers(str(uuid.uuid4()), None), 400),
        (_headers(None, now), 400),
        (_headers(str(uuid.uuid4()), now - timedelta(minutes=6)), 412),
        (_headers(str(uuid.uuid4()), now + timedelta(minutes=10)), 412),
    ]
    for headers, status in cases:
        response = signed(server, "POST", f"/rooms?{V}", {}, headers=headers)
        assert response.status_code == status, headers
        assert response.headers["Repeatability-Result"] == "rejected"
        assert response.json()["error"]["target"].startswith("Repeatability-")


def test_repeat_after_restart_does_not_create_again(fresh_server: Server) -> None:
    headers = _headers(str(uuid.uuid4()), datetime.now(UTC))
    first = signed(fresh_server, "POST", f"/rooms?{V}", {}, headers=headers)
    fresh_server.kill()
    fresh_server.start()
    again = signed(fresh_server, "POST", f"/rooms?{V}", {}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert _count_rooms(fresh_server) == 1
