"""HTTP routes of the event-subscription API (vrooms extension, HMAC-authenticated like Rooms).

PUT    /eventSubscriptions/{name}                   create (after the endpoint's handshake)
GET    /eventSubscriptions                          list
GET    /eventSubscriptions/{name}                   one
DELETE /eventSubscriptions/{name}                   delete (pending deliveries go with it)
GET    /eventSubscriptions/{name}/deadLetters       events that exhausted their retries
POST   /eventSubscriptions/{name}/deadLetters:replay  deliver them again
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vrooms.api.endpoint import ApiCall, ApiServices, Handler, endpoint
from vrooms.api.responses import JSONResponse
from vrooms.events import repository, schemas
from vrooms.events.service import EventsService
from vrooms.store.database import Database


class EventsApi(ApiServices, Protocol):
    """What the Event Grid subscription routes use."""

    @property
    def database(self) -> Database: ...

    @property
    def events(self) -> EventsService: ...


Call = ApiCall[EventsApi]


async def create_subscription(call: Call) -> Response:
    new = schemas.parse_subscription(call.path_param("name"), call.json())
    subscription = await call.services.events.subscribe(call.services.database, new)
    return JSONResponse(schemas.subscription_to_wire(subscription), status_code=201)


async def list_subscriptions(call: Call) -> Response:
    async with call.services.database.read() as conn:
        subscriptions = await repository.list_subscriptions(conn)
    # Call connections' callback subscriptions are the call's business, not the API's.
    return JSONResponse({"value": [schemas.subscription_to_wire(s) for s in subscriptions if not s.is_callback]})


async def get_subscription(call: Call) -> Response:
    async with call.services.database.read() as conn:
        subscription = await call.services.events.get(conn, schemas.check_name(call.path_param("name")))
    return JSONResponse(schemas.subscription_to_wire(subscription))


async def delete_subscription(call: Call) -> Response:
    async with call.services.database.write() as conn:
        await call.services.events.delete(conn, schemas.check_name(call.path_param("name")))
    return Response(status_code=204)


async def list_dead_letters(call: Call) -> Response:
    async with call.services.database.read() as conn:
        subscription = await call.services.events.get(conn, schemas.check_name(call.path_param("name")))
        dead = await repository.dead_letters(conn, subscription.id, limit=1000)
    return JSONResponse({"value": [schemas.dead_letter_to_wire(row) for row in dead]})


async def replay_dead_letters(call: Call) -> Response:
    async with call.services.database.write() as conn:
        replayed = await call.services.events.replay(conn, schemas.check_name(call.path_param("name")))
    return JSONResponse({"replayed": replayed})


def _endpoint(handler: Handler[EventsApi]) -> Callable[[Request], Awaitable[Response]]:
    return endpoint(schemas.VERSIONS, handler)


routes = [
    Route("/eventSubscriptions", _endpoint(list_subscriptions), methods=["GET"]),
    Route("/eventSubscriptions/{name}", _endpoint(create_subscription), methods=["PUT"]),
    Route("/eventSubscriptions/{name}", _endpoint(get_subscription), methods=["GET"]),
    Route("/eventSubscriptions/{name}", _endpoint(delete_subscription), methods=["DELETE"]),
    Route("/eventSubscriptions/{name}/deadLetters", _endpoint(list_dead_letters), methods=["GET"]),
    Route("/eventSubscriptions/{name}/deadLetters:replay", _endpoint(replay_dead_letters), methods=["POST"]),
]
