"""Keeps a media plane available: starts Janus (or reaches an external one) and starts over when it goes.

The call host hands it two callbacks; it never tells the calls anything in Janus terms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from vrooms.config import Settings
from vrooms.media.config import JanusEndpoint
from vrooms.media.janus import JanusConnection, JanusError
from vrooms.media.plane import JanusMediaPlane
from vrooms.media.supervisor import JanusProcess
from vrooms.media.types import MediaPlane
from vrooms.supervision import Backoff

log = logging.getLogger("vrooms.media")


def _external(settings: Settings) -> JanusEndpoint:
    assert settings.janus_url is not None
    return JanusEndpoint(
        url=settings.janus_url,
        api_secret=settings.janus_api_secret.get_secret_value() if settings.janus_api_secret else None,
        admin_key=settings.janus_admin_key.get_secret_value() if settings.janus_admin_key else None,
    )


async def keep_media(
    settings: Settings, on_ready: Callable[[MediaPlane], None], on_lost: Callable[[], Awaitable[None]]
) -> None:
    process = None if settings.janus_url else JanusProcess(settings)
    backoff = Backoff()
    while True:
        connection: JanusConnection | None = None
        try:
            endpoint = await process.start() if process is not None else _external(settings)
            connection = JanusConnection(endpoint)
            await connection.open()
        except (OSError, RuntimeError, JanusError) as exc:
            delay = backoff.next()
            log.error("media server unavailable: %s (retrying in %.1f s)", exc, delay)
            if connection is not None:
                await connection.close()
            if process is not None:
                await process.stop()
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        on_ready(JanusMediaPlane(connection, endpoint.admin_key, settings.video_bitrate))
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(connection.closed.wait())]
        if process is not None:
            waits.append(asyncio.ensure_future(process.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        log.error("the media server stopped; ending its calls and restarting it")
        await on_lost()
        await connection.close()
        if process is not None:
            await process.stop()
