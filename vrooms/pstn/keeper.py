"""Keeps the telephone side up: rtpengine (started here, or an external one), the DTMF reports, the SIP stack.

When the rtpengine vrooms started dies, its legs end (``PstnService.engine_lost``)
and a new one starts; new dial-outs wait for it (``PstnUnavailable`` meanwhile).
"""

from __future__ import annotations

import asyncio
import logging

from vrooms.config import Settings
from vrooms.pstn.ng import NgClient, NgError
from vrooms.pstn.rtpengine import Rtpengine, RtpengineProcess, free_udp_port, listen_dtmf, write_silence
from vrooms.pstn.service import PstnService

log = logging.getLogger("vrooms.pstn")

_MAX_BACKOFF_SECONDS = 10.0


async def _external(url: str, settings: Settings) -> Rtpengine:
    _, host, port = url.split(":")
    client = NgClient(host, int(port))
    await client.open()
    engine = Rtpengine(client, write_silence(settings.data_dir / "rtpengine" / "silence.wav"))
    await engine.ping()
    return engine


async def keep_telephony(settings: Settings, pstn: PstnService) -> None:
    dtmf_port = settings.rtpengine_dtmf_port or free_udp_port()
    reports = await listen_dtmf(dtmf_port, pstn.tone_received)
    process = None
    if not settings.rtpengine_url:
        process = RtpengineProcess(
            settings.rtpengine_binary, settings.data_dir / "rtpengine", settings.rtpengine_port_range, dtmf_port
        )
    backoff = 0.25
    try:
        while True:
            try:
                engine = await (
                    process.start() if process is not None else _external(str(settings.rtpengine_url), settings)
                )
            except (OSError, RuntimeError, NgError) as exc:
                log.error("rtpengine unavailable: %s (retrying in %.1f s)", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            backoff = 0.25
            pstn.engine_ready(engine)
            if process is None:
                await asyncio.Event().wait()  # an external rtpengine is the operator's to keep
            assert process is not None
            await process.wait()
            log.error("rtpengine stopped; ending its phone legs and restarting it")
            engine.client.close()
            await pstn.engine_lost()
    finally:
        reports.close()
        if process is not None:
            await process.stop()
