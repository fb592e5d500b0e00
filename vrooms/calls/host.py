"""The call host: one process beside the REST workers that owns every live call.

It starts (or connects to) Janus, keeps it alive, serves the signaling WebSocket and
the Call Automation operations on a Unix socket that the REST workers relay to, and
listens for change notices. One
process owns the calls, so call state needs no cross-process locking; scaling out
means several call hosts with their own Janus, each owning a share of the rooms.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from vrooms import logs
from vrooms.app import build_services
from vrooms.automation.host_api import RepeatMemory, automation_endpoint
from vrooms.automation.prompts import PromptRenderer
from vrooms.automation.service import AutomationService
from vrooms.calls import notify, protocol
from vrooms.calls.routes import signaling
from vrooms.calls.service import CallService
from vrooms.config import Settings
from vrooms.egress import EgressPolicies
from vrooms.events.wakeup import Wakeup
from vrooms.media.keeper import keep_media
from vrooms.pstn.config import telephony
from vrooms.pstn.keeper import keep_telephony
from vrooms.pstn.prompts import speak_prompts
from vrooms.pstn.service import PstnService
from vrooms.pstn.sip import CallLimits, SipStack
from vrooms.recording.store import RecordingStore
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


async def run(settings: Settings) -> None:
    services = build_services(settings)
    calls = CallService(services.database, services.identity)
    calls.events_written = Wakeup(settings.run_dir).poke
    if abandoned := await calls.close_abandoned_calls():
        log.warning("ended %d call(s) left open by a call host that stopped without ending them", abandoned)
    egress = EgressPolicies.from_settings(settings)
    prompts = PromptRenderer(
        settings.data_dir / "prompts-cache", settings.prompts_dir, egress.prompts, settings.prompt_cache_mb << 20
    )
    automation = AutomationService(
        calls,
        prompts,
        egress,
        RecordingStore(settings.data_dir / "recordings"),
        public_url=settings.effective_public_url,
        callback_retry_seconds=settings.event_ttl_seconds,
    )
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
    spawn(keep_media(settings, calls.media_ready, calls.media_lost))
    failed = asyncio.Event()

    def stop_failed() -> None:
        failed.set()
        server.should_exit = True

    pstn = await _start_telephony(settings, calls, spawn, stop_failed)
    spawn(_reconcile(settings, calls))
    try:
        await server.serve(sockets=[signaling_socket])
    finally:
        await calls.shutdown()
        await automation.shutdown()
        if pstn is not None:
            await pstn.shutdown()
        await tasks.cancel_all()
        transport.close()
        await services.database.dispose()
    if failed.is_set():
        raise SystemExit(1)  # the launcher starts the call host again


def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
