"""Keeps the telephone side up: rtpengine (started here, or an external one), the DTMF reports, the SIP stack.

When the rtpengine vrooms started dies or stops answering its ng pings (a hang: SIGSTOP,
a deadlock), its legs end (``PstnService.engine_lost``) and a new one starts; new
dial-outs wait for it (``PstnUnavailable`` meanwhile). An external rtpengine that stops
answering is treated the same way, then reached again.
"""

from __future__ import annotations

import asyncio
import logging

from vrooms.config import Settings
from vrooms.pstn.ng import NgClient, NgError
from vrooms.pstn.rtpengine import Rtpengine, RtpengineProcess, listen_dtmf, write_silence
from vrooms.pstn.service import PstnService
from vrooms.supervision import Backoff, heartbeat

log = logging.getLogger("vrooms.pstn")


async def _external(url: str, settings: Settings) -> Rtpengine:
    _, host, port = url.split(":")
    client = NgClient(host, int(port))
    await client.open()
    engine = Rtpengine(client, write_silence(settings.data_dir / "rtpengine" / "silence.wav"))
    await engine.ping()
    return engine


async def _lost(engine: Rtpengine, process: RtpengineProcess | None) -> str:
    """Once the engine exits or stops answering pings: why."""
    watching: list[asyncio.Future[str | int]] = [asyncio.ensure_future(heartbeat(engine.ping))]
    if process is not None:
        watching.append(asyncio.ensure_future(process.wait()))
    try:
        done, _ = await asyncio.wait(watching, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in watching:
            task.cancel()
    result = done.pop().result()
    return result if isinstance(result, str) else f"it exited with status {result}"


async def keep_telephony(settings: Settings, pstn: PstnService) -> None:
    reports, dtmf_port = await listen_dtmf(settings.rtpengine_dtmf_port, pstn.tone_received)
    process = None
    if not settings.rtpengine_url:
        process = RtpengineProcess(
            settings.rtpengine_binary, settings.data_dir / "rtpengine", settings.rtpengine_port_range, dtmf_port
        )
    backoff = Backoff()
    try:
        while True:
            try:
                engine = await (
                    process.start() if process is not None else _external(str(settings.rtpengine_url), settings)
                )
            except (OSError, RuntimeError, NgError) as exc:
                delay = backoff.next()
                log.error("rtpengine unavailable: %s (retrying in %.1f s)", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            pstn.engine_ready(engine)
            log.error("rtpengine lost (%s); ending its phone legs and restarting it", await _lost(engine, process))
            engine.client.close()
            await pstn.engine_lost()
            if process is not None:
                await process.stop()
    finally:
        reports.close()
        if process is not None:
            await process.stop()
