"""A hostile webhook endpoint: its answer never ends. vrooms reads the status and at most
64 KiB of the body, so deliveries and handshakes still conclude (before: a delivery read
the body to its end, and timed out as "no answer")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from tests.test_events_store import subscription
from vrooms.egress import EgressPolicy
from vrooms.errors import ApiError
from vrooms.events import webhooks
from vrooms.events.models import NewSubscription

LOOPBACK = EgressPolicy.parse("VROOMS_EGRESS_WEBHOOKS", "loopback")

CHUNK = b"x" * 65536


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    while True:  # until the client goes away
        await response.write(CHUNK)


@pytest.fixture
async def endless_endpoint() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/hook", _endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_a_delivery_concludes_on_the_status_whatever_the_body(endless_endpoint: str) -> None:
    hook = replace(subscription("endless"), endpoint=endless_endpoint)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        status = await asyncio.wait_for(webhooks.deliver(session, LOOPBACK, hook, [], "topic", 1), 10)
    assert status == 200


async def test_a_handshake_answered_with_an_endless_body_is_refused_not_read(endless_endpoint: str) -> None:
    new = NewSubscription("endless", endless_endpoint, "EventGridSchema", None, None, None, None, 1)
    with pytest.raises(ApiError) as refused:
        await asyncio.wait_for(webhooks.handshake(new, "topic", LOOPBACK), 10)
    assert "validationResponse" in refused.value.message or "JSON" in refused.value.message
