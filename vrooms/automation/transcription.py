"""Call Automation transcription: the call's live text to the app's WebSocket, as ACS sends it.

The text is the call's captions pipeline's (``calls.captioning.Transcripts``: one recognizer per
speaker and language, shared with the participants' captions when they run in the same
language), so transcription costs no second decoding. First ``TranscriptionMetadata``, then a
``TranscriptionData`` for every final result, and for every partial one when the app enabled
intermediate results. Results wait in a bounded queue while the socket is written; an app that
does not read them (the queue full, or a write stalled) breaks the transcription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from vrooms.automation import app_socket
from vrooms.automation.stream_messages import transcription_data, transcription_metadata
from vrooms.calls.call import Participant
from vrooms.egress import EgressPolicy
from vrooms.speech import Caption
from vrooms.supervision import cancel_others

log = logging.getLogger("vrooms.automation")

_QUEUED_RESULTS = 256


class Transcription:
    def __init__(
        self,
        transport_url: str,
        subscription_id: str,
        locale: str,
        *,
        intermediate: bool,
        egress: EgressPolicy,
        on_broken: Callable[[Transcription, str], None],
    ) -> None:
        self.transport_url = transport_url
        self.subscription_id = subscription_id
        self.locale = locale
        self.intermediate = intermediate
        self._egress = egress
        self._on_broken = on_broken
        self._socket: ClientConnection | None = None
        self._results: asyncio.Queue[bytes] = asyncio.Queue(_QUEUED_RESULTS)
        self._tasks: list[asyncio.Task[None]] = []
        self._started_at = time.time()
        self._broken = False

    async def open(self, connection_id: str, correlation_id: str) -> None:
        """The WebSocket and its metadata; raises ``app_socket.AppSocketFailed``."""
        self._socket = await app_socket.open_app_socket(self.transport_url, self._egress)
        metadata = transcription_metadata(self.subscription_id, self.locale, connection_id, correlation_id)
        await app_socket.send(self._socket, metadata.decode())
        self._started_at = time.time()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._drain())]

    def caption(self, caption: Caption, speaker: Participant) -> None:
        """A ``calls.captioning.CaptionSink``."""
        if self._socket is None or (not caption.final and not self.intermediate):
            return
        try:
            self._results.put_nowait(transcription_data(caption, speaker.user_id, self._started_at))
        except asyncio.QueueFull:
            self._break("the app stopped reading the WebSocket")

    async def _write(self) -> None:
        assert self._socket is not None
        try:
            while True:
                await app_socket.send(self._socket, (await self._results.get()).decode())
        except app_socket.AppSocketFailed as exc:
            self._break(str(exc))

    async def _drain(self) -> None:
        """What the app sends is read and dropped (unread, it would hold the socket's keepalive up);
        the app closing the socket breaks the transcription."""
        assert self._socket is not None
        with contextlib.suppress(Exception):
            async for _ in self._socket:
                pass
        self._break("the app closed the WebSocket")

    def _break(self, why: str) -> None:
        if not self._broken:
            self._broken = True
            log.info("transcription %s ended: %s", self.subscription_id[:8], why)
            self._on_broken(self, why)

    async def close(self) -> None:
        """Safe to call twice, or on a transcription whose socket never opened."""
        self._broken = True
        cancel_others(self._tasks)
        self._tasks = []
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await app_socket.close(socket)
