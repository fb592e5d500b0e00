"""Listing stays correct while rooms are created and deleted during it."""

from __future__ import annotations

from tests.servers import Server, signed

V = "api-version=2025-03-13"


def test_listing_while_rooms_come_and_go(server: Server) -> None:
    stable = [signed(server, "POST", f"/rooms?{V}", {}).json()["id"] for _ in range(30)]
    doomed = [signed(server, "POST", f"/rooms?{V}", {}).json()["id"] for _ in range(10)]
    seen: list[str] = []
    link = f"/rooms?{V}&maxpagesize=7"
    pages = 0
    while link:
        page = signed(server, "GET", link).json()
        seen += [room["id"] for room in page["value"]]
        pages += 1
        # Between pages: delete a room not yet listed and create new ones.
        if doomed:
            assert signed(server, "DELETE", f"/rooms/{doomed.pop()}?{V}").status_code == 204
        signed(server, "POST", f"/rooms?{V}", {})
        link = page.get("nextLink", "").removeprefix(server.endpoint)
    assert pages > 5
    assert len(seen) == len(set(seen)), "a room was listed twice"
    assert set(stable) <= set(seen), "a room that existed throughout was skipped"
