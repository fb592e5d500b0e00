"""The fuzz stage: requests generated from the shipped ACS specs (tests/specs) against a
real server on both backends. Whatever a client sends, with or without a valid signature:
no 5xx, and every error in the ACS shape with its ``x-ms-error-code``.

Seeded (``derandomize``), so a run is repeatable; ``VROOMS_FUZZ_EXAMPLES`` per operation
and backend (default 300: about a minute in all) sets the budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_specs import Operation, Request, operations, requests
from tests.servers import Server, signed, signed_headers

ROOMS_VERSIONS = ["2023-06-14", "2024-04-15", "2025-03-13"]
IDENTITY_VERSIONS = ["2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01"]
OPERATIONS = [(op, ROOMS_VERSIONS) for op in operations("rooms-2024-04-15.json")] + [
    (op, IDENTITY_VERSIONS) for op in operations("identity-2026-09-23.json")
]
EXAMPLES = int(os.environ.get("VROOMS_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def real_ids(server: Server) -> list[str]:
    """A room and an identity that exist, so that generated requests reach the rules."""
    user = signed(server, "POST", "/identities?api-version=2023-10-01", {}).json()["identity"]["id"]
    room = signed(server, "POST", "/rooms?api-version=2025-03-13", {"participants": {user: {"role": "Presenter"}}})
    return [room.json()["id"], user]


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as shared:  # one keep-alive connection: the budget goes to requests
        yield shared


def _send(server: Server, client: httpx.Client, request: Request) -> httpx.Response:
    url = f"{server.endpoint}{request.target}"
    headers = signed_headers(server.key, request.method, url, request.body) if request.signed else {}
    headers["Content-Type"] = request.content_type
    return client.request(request.method, url, content=request.body, headers=headers)


def _check(request: Request, response: httpx.Response) -> None:
    where = f"{request.method} {request.target} {request.body[:300]!r} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, where
        error = body["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), where
        assert response.headers.get("x-ms-error-code") == error["code"], where
        assert len(response.content) < 8192, where  # errors do not echo what was sent


@pytest.mark.parametrize(("operation", "versions"), OPERATIONS, ids=[op.name for op, _ in OPERATIONS])
def test_generated_requests_get_no_5xx_and_acs_errors(
    server: Server, client: httpx.Client, real_ids: list[str], operation: Operation, versions: list[str]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests(operation, real_ids, versions))
    def run(request: Request) -> None:
        _check(request, _send(server, client, request))

    run()
