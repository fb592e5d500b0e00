"""HTTP routes of the Rooms API (paths and status codes of Rooms/stable/2024-04-15).

Each route opens the transaction it needs, calls the service, renders the wire
format for the negotiated api-version, and fills in its operation-log record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vrooms.api import paging, repeatability
from vrooms.api.endpoint import ApiCall, ApiServices, correlation_id, endpoint
from vrooms.api.responses import JSONResponse, dumps
from vrooms.api.times import now_micros
from vrooms.errors import ApiError
from vrooms.oplog.records import Operation, OperationRecord
from vrooms.oplog.repository import OperationLogWriter
from vrooms.rooms import schemas
from vrooms.rooms.commands import RoomCommands
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database


class RoomsApi(ApiServices, Protocol):
    """What the Rooms routes use (the operation log too)."""

    @property
    def database(self) -> Database: ...

    @property
    def rooms(self) -> RoomsService: ...

    @property
    def room_commands(self) -> RoomCommands: ...

    @property
    def oplog(self) -> OperationLogWriter: ...


Call = ApiCall[RoomsApi]
RoomsHandler = Callable[[Call, OperationRecord], Awaitable[Response]]


def logged(operation: Operation, handler: RoomsHandler) -> Callable[[Request], Awaitable[Response]]:
    """Run ``handler`` as an authenticated endpoint and append its operation-log record."""

    async def run(request: Request) -> Response:
        services: RoomsApi = request.app.state.services
        started = time.perf_counter()
        record = OperationRecord(
            time_generated=now_micros(),
            operation_name=operation.value,
            operation_version=request.query_params.get("api-version", ""),
            correlation_id=correlation_id(request),
        )

        async def inner(call: Call) -> Response:
            record.operation_version = call.version
            return await handler(call, record)

        try:
            response = await endpoint(schemas.VERSIONS, inner)(request)
            record.result_signature = response.status_code
        except ApiError as error:
            if error.status == 401:
                raise  # unauthenticated callers do not get to write to our log
            record.level = "Error" if error.status >= 500 else "Warning"
            record.result_type = "Failed"
            record.result_signature = error.status
            record.error_message = error.message
            raise
        finally:
            record.duration_ms = int((time.perf_counter() - started) * 1000)
            if record.result_signature != 401:
                services.oplog.append(record)
        return response

    return run


def _room_id(call: Call, record: OperationRecord) -> str:
    room_id = call.path_param("roomId")
    record.room_id = room_id  # stored cut to its column (ClientText)
    return schemas.check_room_id(room_id)


async def create_room(call: Call, record: OperationRecord) -> Response:
    services = call.services
    new = schemas.parse_new_room(call.json(), call.version)
    key = repeatability.parse(
        {k.lower(): v for k, v in call.request.headers.items()},
        call.version.encode() + b"\n" + call.body,
        now=now_micros(),
        window_seconds=services.settings.repeatability_window_seconds,
    )
    try:
        async with services.database.write() as conn:
            stored = await repeatability.claim(conn, key, now_micros()) if key else None
            if stored is None:
                room = await services.rooms.create(conn, new)
                body = dumps(schemas.room_to_wire(room))
                if key:
                    await repeatability.complete(conn, key, 201, body)
    except IntegrityError:
        if key is None:
            raise
        # A concurrent twin committed first (PostgreSQL); answer with its response.
        async with services.database.read() as conn:
            stored = await repeatability.claim(conn, key, now_micros())
        if stored is None:
            raise
    headers = {repeatability.RESULT: "accepted"} if key else {}
    if stored is not None:
        record.room_id = orjson.loads(stored.body).get("id")
        return Response(stored.body, stored.status, headers, media_type="application/json")
    record.describe_room(room)
    record.added_participants_count = len(new.participants)
    return Response(body, 201, headers, media_type="application/json")


async def get_room(call: Call, record: OperationRecord) -> Response:
    room_id = _room_id(call, record)
    async with call.services.database.read() as conn:
        room = await call.services.rooms.get(conn, room_id)
    record.describe_room(room)
    return JSONResponse(schemas.room_to_wire(room))


async def update_room(call: Call, record: OperationRecord) -> Response:
    room_id = _room_id(call, record)
    changes = schemas.parse_room_changes(call.json(empty_ok=True), call.version)
    room = await call.services.room_commands.update(room_id, changes)
    record.describe_room(room)
    return JSONResponse(schemas.room_to_wire(room))


async def delete_room(call: Call, record: OperationRecord) -> Response:
    room_id = _room_id(call, record)
    await call.services.room_commands.delete(room_id)
    return Response(status_code=204)


async def list_rooms(call: Call, _record: OperationRecord) -> Response:
    position = paging.decode_token(call.request, "r")
    if position is not None and not (position.isascii() and position.isdigit() and len(position) <= 18):
        raise paging.invalid_token()
    size = paging.page_size(call.request, call.services.settings.default_page_size)
    async with call.services.database.read() as conn:
        rooms, more = await call.services.rooms.list_rooms(conn, after_seq=int(position or 0), limit=size)
    page: dict[str, object] = {"value": [schemas.room_to_wire(room) for room in rooms]}
    if more:
        token = paging.encode_token("r", str(rooms[-1].seq))
        page["nextLink"] = paging.next_link(call.request, call.version, token, size)
    return JSONResponse(page)


async def list_participants(call: Call, record: OperationRecord) -> Response:
    room_id = _room_id(call, record)
    after = paging.decode_token(call.request, "p") or ""
    size = paging.page_size(call.request, call.services.settings.default_page_size)
    async with call.services.database.read() as conn:
        room, participants, more = await call.services.rooms.list_participants(
            conn, room_id, after_raw_id=after, limit=size
        )
    record.describe_room(room)
    page: dict[str, object] = {"value": [schemas.participant_to_wire(p) for p in participants]}
    if more:
        token = paging.encode_token("p", participants[-1].raw_id)
        page["nextLink"] = paging.next_link(call.request, call.version, token, size)
    return JSONResponse(page)


async def update_participants(call: Call, record: OperationRecord) -> Response:
    room_id = _room_id(call, record)
    changes = schemas.parse_roster_changes(call.json(empty_ok=True), call.version)
    change = await call.services.room_commands.change_roster(room_id, changes)
    record.describe_roster_change(change)
    return JSONResponse({})


routes = [
    Route("/rooms", logged(Operation.CREATE_ROOM, create_room), methods=["POST"]),
    Route("/rooms", logged(Operation.LIST_ROOMS, list_rooms), methods=["GET"]),
    Route("/rooms/{roomId}", logged(Operation.GET_ROOM, get_room), methods=["GET"]),
    Route("/rooms/{roomId}", logged(Operation.PATCH_ROOM, update_room), methods=["PATCH"]),
    Route("/rooms/{roomId}", logged(Operation.DELETE_ROOM, delete_room), methods=["DELETE"]),
    Route("/rooms/{roomId}/participants", logged(Operation.GET_PARTICIPANTS, list_participants), methods=["GET"]),
    Route("/rooms/{roomId}/participants", logged(Operation.ADD_PARTICIPANTS, update_participants), methods=["PATCH"]),
]
