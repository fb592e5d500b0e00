"""The call host: one process beside the REST workers that owns every live call.

It starts (or connects to) Janus, keeps it alive, serves the signaling WebSocket and
the Call Automation operations on a Unix socket that the REST workers relay to, and
listens for change notices. One
process owns the calls, so call state needs no cross-process locking; scaling out
means several call hosts with their own Janus, each owning a share of the rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import nats.errors
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from vrooms import logs
from vrooms.auth.tokens import TokenIssuer, load_or_create_resource_id, load_or_create_signing_key
from vrooms.automation import host_api
from vrooms.automation.host_api import RepeatMemory, automation_endpoint
from vrooms.automation.prompts import PromptRenderer
from vrooms.automation.service import AutomationService
from vrooms.calls import notify, protocol
from vrooms.calls.routes import signaling
from vrooms.calls.service import CallService
from vrooms.captions.engines import EngineChoice
from vrooms.captions.service import CaptionsService
from vrooms.cluster import notices as bus_notices
from vrooms.cluster.agent import NodeAgent, cpu_load
from vrooms.cluster.bus import ClusterBus, shown
from vrooms.cluster.invites import BusInvites
from vrooms.cluster.registry import NodeEntry
from vrooms.cluster.sip_peers import ClusterSipPeers
from vrooms.config import Settings
from vrooms.egress import EgressPolicies
from vrooms.events.wakeup import Wakeup
from vrooms.identity.service import IdentityService
from vrooms.media.coturn import keep_coturn
from vrooms.media.keeper import keep_media
from vrooms.media.turn import turn_for
from vrooms.metrics import catalog
from vrooms.pstn.config import telephony
from vrooms.pstn.keeper import keep_telephony
from vrooms.pstn.prompts import speak_prompts
from vrooms.pstn.service import PstnService
from vrooms.pstn.sip import CallLimits, SipStack
from vrooms.recording.store import RecordingStore
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database
from vrooms.supervision import TaskSet, heartbeat

log = logging.getLogger("vrooms.calls")


def _on_notice(calls: CallService, spawn: Any) -> Any:
    def handle(notice: dict[str, Any]) -> None:
        event = notice.get("event")
        if event == "roomChanged" and isinstance(notice.get("roomId"), str):
            spawn(calls.changes.room_changed(notice["roomId"]))
        elif event == "userChanged" and isinstance(notice.get("userId"), str):
            spawn(calls.changes.user_changed(notice["userId"]))

    return handle


async def _reconcile(settings: Settings, calls: CallService) -> None:
    while True:
        await asyncio.sleep(settings.call_reconcile_interval_seconds)
        try:
            await calls.changes.reconcile()
        except Exception:
            log.exception("reconciling live calls failed; will retry")


async def _watch_sip(sip: SipStack, stop: Callable[[], None]) -> None:
    """sippy's thread cannot be restarted in a process (its reactor is a singleton): a hung one
    stops the call host, which the launcher starts again (calls end with a reason; clients rejoin)."""
    reason = await heartbeat(sip.probe)
    log.critical("the SIP stack stopped answering (%s); stopping the call host so that it restarts", reason)
    stop()


async def _start_telephony(
    settings: Settings, calls: CallService, spawn: Any, stop: Callable[[], None]
) -> PstnService | None:
    """Phone legs, if a SIP trunk is configured: the SIP stack here, rtpengine beside Janus."""
    config = telephony(settings)
    if config is None:
        return None
    pstn = PstnService(calls, config, await speak_prompts(settings.data_dir / "prompts"))
    pstn.sip = SipStack(config.trunk, pstn.incoming, CallLimits(config.max_incoming, config.max_incoming_per_number))
    await pstn.sip.start()
    calls.telephony = pstn
    spawn(keep_telephony(settings, pstn))
    spawn(_watch_sip(pstn.sip, stop))
    log.info("SIP trunk %s:%d, listening on %s", config.trunk.host, config.trunk.port, settings.sip_listen)
    return pstn


def _private_socket(path: Path) -> socket.socket:
    """The signaling socket, for this user only (uvicorn makes a socket it binds 0666)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    return sock


def _identity(settings: Settings, database: Database) -> IdentityService:
    """Token checks (the call host verifies every joiner's token) and nothing else of the REST side."""
    tokens = TokenIssuer(load_or_create_signing_key(settings.data_dir), load_or_create_resource_id(settings.data_dir))
    rooms = RoomsService(max_participants=settings.max_room_participants)
    return IdentityService(resource_id=tokens.resource_id, tokens=tokens, rooms=rooms)


def _load(settings: Settings, calls: CallService) -> NodeEntry:
    """This node's entry in the registry: health and load, as placement weighs them."""
    live = [p for call in calls.calls.values() for p in call.participants.values()]
    phones = sum(1 for p in live if p.phone_number is not None)
    return NodeEntry(
        name=settings.node_name,
        advertise=settings.effective_advertise,
        calls=len(calls.calls),
        participants=len(live) - phones,
        phone_legs=phones,
        cpu=cpu_load(),
        media=calls.plane is not None,
        telephony=None if calls.telephony is None else True,
        sip=None if calls.telephony is None else settings.sip_reachable,
    )


async def _sample(settings: Settings, calls: CallService) -> None:
    """The call host's metrics, every second: what it holds, whether its media answers."""
    adoptions = 0
    while True:
        entry = _load(settings, calls)
        catalog.CALLS.set(entry.calls)
        catalog.PARTICIPANTS.labels("webrtc").set(entry.participants)
        catalog.PARTICIPANTS.labels("phone").set(entry.phone_legs)
        catalog.MEDIA_UP.set(int(entry.media))
        if entry.telephony is not None:
            catalog.TELEPHONY_UP.set(int(entry.telephony))
        catalog.CALLS_ADOPTED.inc(calls.adoptions - adoptions)
        adoptions = calls.adoptions
        await asyncio.sleep(1.0)


async def _join_cluster(
    settings: Settings, calls: CallService, spawn: Any, close_connections: Callable[[], Awaitable[int]]
) -> NodeAgent | None:
    """In a cluster: the bus, this node's agent (registry entry, room leases) and change notices."""
    if settings.cluster is None:
        return None
    bus = ClusterBus(settings.cluster, settings.cluster_name, settings.node_name)
    await bus.connect()
    agent = NodeAgent(bus, partial(_load, settings, calls))
    calls.placement = agent

    async def lost(room_id: str) -> None:
        call = calls.calls.get(room_id)
        if call is not None:
            catalog.CALLS_HANDED_OVER.inc()
            await calls.hand_over(call, agent.endpoints)

    async def sweep(alive: set[str], placed: set[str]) -> None:
        if ended := await calls.close_orphaned_calls(alive, placed):
            log.warning("ended %d call(s) of lost nodes that no node took over", ended)
            await close_connections()

    async def reconnected() -> None:
        spawn(calls.changes.reconcile())  # notices sent while we were away are lost: re-read everything

    async def drain_requested(message: Any) -> None:
        moved = await _drain(agent, calls)
        await message.respond(orjson.dumps({"node": settings.node_name, "moved": moved}))
        os.kill(os.getppid(), signal.SIGTERM)  # `vrooms serve` stops its workers, then this process

    agent.on_lost, agent.sweep, agent.on_endpoints = lost, sweep, calls.nodes_changed
    invites = BusInvites(bus, calls, lambda: agent.alive)
    calls.elsewhere = invites
    await invites.listen()
    bus.on_reconnect.append(reconnected)
    await bus_notices.listen(bus, _on_notice(calls, spawn))
    await bus.subscribe(bus.subject("node", settings.node_name, "drain"), drain_requested)
    spawn(agent.run())
    log.info("node %s of cluster %s (NATS %s)", settings.node_name, settings.cluster_name, shown(settings.cluster))
    return agent


async def _serve_automation(bus: ClusterBus, automation: AutomationService, repeats: RepeatMemory, spawn: Any) -> None:
    async def run(message: Any) -> None:
        await message.respond(await host_api.answer(automation, repeats, message.data))

    async def received(message: Any) -> None:
        spawn(run(message))  # one slow operation (a phone add) must not hold the others

    await bus.subscribe(bus.subject("node", bus.node_name, "automation"), received)


async def _drain(agent: NodeAgent, calls: CallService) -> int:
    """Take no new calls, move the running ones to other nodes (their clients follow at once)."""
    agent.draining = True
    with contextlib.suppress(nats.errors.Error):
        await agent.registry.publish(agent.entry())  # out of placement before any client comes back
    moving = list(calls.calls.values())
    with contextlib.suppress(nats.errors.Error):  # the endpoints of the nodes that take calls now
        await agent.refresh()
    others = [endpoint for endpoint in agent.endpoints if endpoint != agent.entry().advertise]
    for call in moving:
        catalog.CALLS_HANDED_OVER.inc()
        await calls.hand_over(call, others)
    log.warning("drained: %d call(s) moved to other nodes", len(moving))
    return len(moving)


async def run(settings: Settings) -> None:
    database = Database(settings.effective_database_url)
    calls = CallService(database, _identity(settings, database), node=settings.node_name)
    calls.events_written = Wakeup(settings.run_dir).poke
    captions = CaptionsService(
        calls,
        EngineChoice(settings.captions_engine, settings.captions_models_dir),
        settings.captions_workers,
        settings.captions_max_speakers,
    )
    calls.captioner = captions
    own_calls: list[str | None] | None = [settings.node_name] if settings.cluster else None
    if abandoned := await calls.close_abandoned_calls(own_calls):
        log.warning("ended %d call(s) left open by a call host that stopped without ending them", abandoned)
    egress = EgressPolicies.from_settings(settings)
    prompts = PromptRenderer(
        settings.data_dir / "prompts-cache", settings.prompts_dir, egress.prompts, settings.prompt_cache_mb << 20
    )
    automation = AutomationService(
        calls,
        prompts,
        egress,
        RecordingStore(settings.effective_recordings_dir),
        captions,
        public_url=settings.effective_public_url,
        callback_retry_seconds=settings.event_ttl_seconds,
    )
    calls.on_adopted.append(automation.adopted)
    if abandoned := await automation.close_abandoned():
        log.warning("told %d call automation app(s) that their call connection ended", abandoned)
    if unfinished := await automation.recordings.recover():
        log.warning("finishing %d recording(s) a call host left unfinished when it stopped", unfinished)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    signaling_socket = _private_socket(settings.signaling_socket)
    app = Starlette(
        routes=[WebSocketRoute("/calling/v1", signaling), Route("/automation", automation_endpoint, methods=["POST"])]
    )
    app.state.calls = calls
    app.state.automation = automation
    app.state.repeats = RepeatMemory(settings.repeatability_window_seconds)
    app.state.request_budget = partial(
        protocol.RequestBudget,
        per_second=settings.signaling_requests_per_second,
        burst=settings.signaling_request_burst,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=settings.log_level,
            log_config=logs.uvicorn_log_config(settings.log_level),
            ws_max_size=protocol.MAX_FRAME_BYTES,
            lifespan="off",
        )
    )
    tasks = TaskSet(log)
    spawn = tasks.spawn
    transport = await notify.listen(settings.run_dir, _on_notice(calls, spawn))
    agent = await _join_cluster(settings, calls, spawn, automation.close_abandoned)
    app.state.node_endpoints = (lambda: agent.endpoints) if agent is not None else list
    if agent is not None:  # Call Automation requests other nodes' workers send to this node's calls
        await _serve_automation(agent.bus, automation, app.state.repeats, spawn)
    spawn(keep_media(settings, calls.media_ready, calls.media_lost))
    calls.turn, coturn = turn_for(settings)
    if coturn is not None:
        spawn(keep_coturn(coturn))
    failed = asyncio.Event()

    def stop_failed() -> None:
        failed.set()
        server.should_exit = True

    pstn = await _start_telephony(settings, calls, spawn, stop_failed)
    if pstn is not None and pstn.sip is not None and agent is not None:  # dial-ins for other nodes' rooms
        pstn.peers = ClusterSipPeers(agent.placement, agent.registry, settings.node_name)
        pstn.sip.peer_hosts = lambda: agent.sip_hosts
    spawn(_reconcile(settings, calls))
    spawn(_sample(settings, calls))
    try:
        await server.serve(sockets=[signaling_socket])
    finally:
        if agent is not None and not agent.draining:  # SIGTERM: in a cluster, the calls go on elsewhere
            await _drain(agent, calls)
        await calls.shutdown()
        await captions.shutdown()
        await automation.shutdown()
        if pstn is not None:
            await pstn.shutdown()
        await tasks.cancel_all()
        transport.close()
        if agent is not None:
            await agent.leave()
            await agent.bus.close()
        await database.dispose()
    if failed.is_set():
        raise SystemExit(1)  # the launcher starts the call host again


def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
