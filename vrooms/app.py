"""The ASGI application: wires settings, storage and services to the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from vrooms.api import repeatability
from vrooms.api.endpoint import ApiCall, ApiServices, endpoint
from vrooms.api.responses import JSONResponse, error_response, handle_api_error, handle_unexpected
from vrooms.api.times import now_micros
from vrooms.api.timing import RequestTiming
from vrooms.auth.callback_tokens import JWKS_PATH, OPENID_PATHS, callback_signer
from vrooms.auth.keys import KeyRing
from vrooms.auth.tokens import TokenIssuer, load_or_create_resource_id, load_or_create_signing_key
from vrooms.automation import routes as automation_routes
from vrooms.automation.relay import AutomationRelay
from vrooms.calls import repository as calls_repository
from vrooms.calls.notify import CallNotifier
from vrooms.calls.proxy import JoinRouter, signaling_proxy
from vrooms.cluster.automation_relay import ClusterAutomationRelay
from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.notices import BusNotices
from vrooms.cluster.placement import RoomPlacement
from vrooms.cluster.registry import NodeRegistry
from vrooms.cluster.routing import ClusterJoinRouter
from vrooms.config import Settings
from vrooms.context import Services
from vrooms.egress import EgressPolicies
from vrooms.errors import ApiError
from vrooms.events import routes as events_routes
from vrooms.events import webhooks
from vrooms.events.formats import default_topic
from vrooms.events.service import EventsService
from vrooms.identity import routes as identity_routes
from vrooms.identity.commands import UserCommands
from vrooms.identity.service import IdentityService
from vrooms.oplog.repository import OperationLogWriter
from vrooms.recording import routes as recording_routes
from vrooms.rooms import repository as rooms_repository
from vrooms.rooms import routes as rooms_routes
from vrooms.rooms import schemas as rooms_schemas
from vrooms.rooms.commands import RoomCommands
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database

log = logging.getLogger("vrooms")
_PURGE_INTERVAL_SECONDS = 60.0


def _web_client(settings: Settings) -> list[Mount]:
    """The browser client (``web/``) at ``/web/``, when this is a source checkout or it is configured."""
    folder = settings.web_dir or Path(__file__).resolve().parent.parent / "web"
    return [Mount("/web", StaticFiles(directory=folder, html=True))] if folder.is_dir() else []


async def _room_of_call(database: Database, call_id: str) -> str | None:
    async with database.read() as conn:
        return await calls_repository.room_of_open_call(conn, call_id)


def build_services(settings: Settings) -> Services:
    database = Database(settings.effective_database_url)
    signing_key = load_or_create_signing_key(settings.data_dir)
    tokens = TokenIssuer(signing_key, load_or_create_resource_id(settings.data_dir))
    rooms = RoomsService(max_participants=settings.max_room_participants)
    identity = IdentityService(resource_id=tokens.resource_id, tokens=tokens, rooms=rooms)
    bus = ClusterBus(settings.cluster, settings.cluster_name, settings.node_name) if settings.cluster else None
    calls = BusNotices(bus) if bus is not None else CallNotifier(settings.run_dir)
    placement = RoomPlacement(bus, NodeRegistry(bus)) if bus is not None else None
    local = AutomationRelay(settings.signaling_socket)
    automation: AutomationRelay | ClusterAutomationRelay = local
    if bus is not None and placement is not None:
        automation = ClusterAutomationRelay(local, bus, placement, partial(_room_of_call, database))
    return Services(
        settings=settings,
        database=database,
        bus=bus,
        keyring=KeyRing(settings),
        tokens=tokens,
        rooms=rooms,
        identity=identity,
        oplog=OperationLogWriter(database, settings.oplog_flush_interval_seconds),
        calls=calls,
        room_commands=RoomCommands(database, rooms, calls),
        user_commands=UserCommands(database, identity, calls),
        events=EventsService(
            handshake=partial(
                webhooks.handshake,
                topic=default_topic(settings),
                policy=EgressPolicies.from_settings(settings).webhooks,
            )
        ),
        automation=automation,
        placement=placement,
        callback_signer=callback_signer(settings),
    )


async def _purge_repeatability_records(services: Services) -> None:
    """Drop repeatability records well past the window in which they can be replayed."""
    keep = 2 * services.settings.repeatability_window_seconds * 1_000_000
    while True:
        try:
            async with services.database.write() as conn:
                await repeatability.purge(conn, now_micros() - keep)
        except Exception:
            log.exception("purging old repeatability records failed; will retry")
        await asyncio.sleep(_PURGE_INTERVAL_SECONDS)


async def ping(_call: ApiCall[ApiServices]) -> Response:
    """An authenticated no-op: the baseline the benchmarks compare every operation to."""
    return JSONResponse({})


def _callback_keys(services: Services) -> list[Route]:
    """Where an app finds the public key that signs its callbacks (see ``auth.callback_tokens``)."""
    signer = services.callback_signer

    async def jwks(_request: Request) -> Response:
        return JSONResponse(signer.jwks())

    async def openid(_request: Request) -> Response:
        return JSONResponse(signer.openid_configuration())

    return [
        Route(JWKS_PATH, jwks, methods=["GET"]),
        *(Route(path, openid, methods=["GET"]) for path in OPENID_PATHS),
    ]


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
    return error_response(ApiError(exc.status_code, code, f"{exc.detail}: no such operation."))


def _join_router(services: Services) -> JoinRouter | None:
    """In a cluster, where a signaling ``join`` goes (``calls.proxy``); None on a single node."""
    if services.placement is None:
        return None
    database = services.database

    async def room_exists(room_id: str) -> bool:
        async with database.read() as conn:
            return await rooms_repository.get_room(conn, room_id) is not None

    return ClusterJoinRouter(services.placement, services.settings.node_name, room_exists)


if TYPE_CHECKING:

    def _services_serve_every_domain(
        services: Services,
    ) -> tuple[
        rooms_routes.RoomsApi, identity_routes.IdentityApi, events_routes.EventsApi, automation_routes.AutomationApi
    ]:
        """Never run: mypy checks that the one ``Services`` has what each domain's routes declare."""
        return services, services, services, services


def _node_tls(settings: Settings) -> ssl.SSLContext | None:
    """How one node's relay trusts another's endpoint: the cluster's shared CA."""
    return ssl.create_default_context(cafile=settings.tls_dir / "ca.pem") if settings.tls else None


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if services.bus is not None:
            await services.bus.connect()
        services.oplog.start()
        purge = asyncio.create_task(_purge_repeatability_records(services))
        try:
            yield
        finally:
            purge.cancel()
            await services.oplog.stop()
            await services.automation.close()
            if services.bus is not None:
                await services.bus.close()
            await services.database.dispose()

    app = Starlette(
        routes=[
            *rooms_routes.routes,
            *identity_routes.routes,
            *events_routes.routes,
            *automation_routes.routes,
            *recording_routes.routes,
            *_callback_keys(services),
            Route("/ping", endpoint(rooms_schemas.VERSIONS, ping), methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            WebSocketRoute("/calling/v1", signaling_proxy),
            *_web_client(settings),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.add_middleware(RequestTiming, routes=app.routes)
    app.state.services = services
    app.state.join_router = _join_router(services)
    app.state.node_tls = _node_tls(settings)
    return app
