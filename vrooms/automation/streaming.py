"""Media streaming: the call's audio to the app's WebSocket, as ACS sends it, and the app's audio back.

A mixed stream is one plain-RTP Opus leg in the call's AudioBridge room: Janus sends it the
mix of everyone but itself (so an app never hears what it says), and mixes what it sends
into what everyone hears. The leg's UDP socket is ours (``RtpRelay``); ffmpeg processes
(Debian's) sit between it and the WebSocket: one decodes the RTP into PCM at the rate the
app asked for, one encodes the app's PCM back into Opus RTP, paced in real time (``-re``),
so an app may send faster than real time. Unmixed, as ACS does it, carries up to four
participants apart (``media.speakers.SpeakersApart``: the dominant speakers, one decoder each);
the leg then exists only to send the app's audio back.

Messages (ACS's audio streaming schema): first ``AudioMetadata`` (subscription id, encoding
PCM, rate, channels 1, frame length), then an ``AudioData`` every 20 ms per stream with
base64 PCM, an ISO 8601 timestamp, ``silent`` and ``participantRawID`` (null: the mix).
From the app: ``AudioData`` (``data``: base64 PCM at the same rate) and ``StopAudio``
(drops what was sent and not yet played). Keys are read case-insensitively, as apps send
both ``kind`` and ``Kind``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import websockets
from websockets.asyncio.client import ClientConnection

from vrooms.automation import app_socket
from vrooms.automation.rtp_relay import RtpRelay
from vrooms.automation.schemas import StreamingOptions
from vrooms.automation.stream_messages import FRAME_SECONDS, audio_data, inbound_audio, metadata
from vrooms.egress import EgressPolicy
from vrooms.media.speakers import Isolate, SpeakersApart, end_process, ffmpeg, start_decoder
from vrooms.media.types import OPUS_PAYLOAD_TYPE, AudioLeg, CallMedia, MediaEvent, MediaPlane
from vrooms.supervision import cancel_others

log = logging.getLogger("vrooms.automation")


class StreamingFailed(Exception):
    """The stream could not start or broke; ``detail`` is ACS's ``mediaStreamingStatusDetails``."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


def _ignore(_event: MediaEvent) -> None:
    """The stream's leg has no participant whose state its media events could change."""


class MediaStream:
    def __init__(
        self,
        options: StreamingOptions,
        subscription_id: str,
        *,
        plane: MediaPlane,
        media: CallMedia,
        egress: EgressPolicy,
        isolate: Isolate,
        on_broken: Callable[[MediaStream, StreamingFailed], None],
    ) -> None:
        """``isolate(participant_id, slot)`` puts a participant's audio alone on a slot (None: off)."""
        self.options = options
        self.subscription_id = subscription_id
        self._plane = plane
        self._media = media
        self._egress = egress
        self._isolate = isolate
        self._on_broken = on_broken
        self._leg: AudioLeg | None = None
        self._relay = RtpRelay()
        self._decoders: list[asyncio.subprocess.Process] = []
        self._apart: SpeakersApart | None = None
        self._encoder: asyncio.subprocess.Process | None = None
        self._socket: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._raw_ids: dict[str, str] = {}

    async def start(self) -> None:
        """Leg, decoders, WebSocket and metadata, in that order; on failure nothing is left running."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        mixed: asyncio.subprocess.Process | None = None
        if self.options.mixed or self.options.bidirectional:
            port = await self._relay.open()
            self._leg, janus = await self._plane.join_rtp(
                self._media,
                display="media streaming",
                send_to=("127.0.0.1", port),
                muted=not self.options.bidirectional,
                on_event=_ignore,
                codec="opus",
            )
            if self.options.mixed:
                mixed = await start_decoder(self._relay.decoder_port, self.options.sample_rate)
                self._decoders.append(mixed)
            self._relay.connect(janus)
        if self.options.bidirectional:
            self._encoder = await self._start_encoder()
        self._socket = await self._connect()
        await self._socket.send(metadata(self.subscription_id, self.options.sample_rate).decode())
        loop = asyncio.get_running_loop()
        if mixed is not None:
            self._tasks.append(loop.create_task(self._send_mix(mixed)))
        else:
            self._apart = SpeakersApart(
                self._plane,
                self._media,
                self.options.sample_rate,
                isolate=self._isolate,
                sink=self._send_apart,
                on_stopped=lambda why: self._broken(StreamingFailed("unspecifiedError", why)),
            )
            await self._apart.start()
            for participant_id in self._raw_ids:
                self._apart.joined(participant_id)
        if self.options.bidirectional:
            self._tasks.append(loop.create_task(self._receive_audio()))

    async def _connect(self) -> ClientConnection:
        try:
            return await app_socket.open_app_socket(self.options.transport_url, self._egress)
        except app_socket.AppSocketFailed as exc:
            raise StreamingFailed("initialWebSocketConnectionFailed", str(exc)) from None

    # -- who is streamed apart (unmixed) --------------------------------------------------------

    def joined(self, participant_id: str, raw_id: str) -> None:
        self._raw_ids[participant_id] = raw_id
        if self._apart is not None:
            self._apart.joined(participant_id)

    def talking(self, participant_id: str) -> None:
        if self._apart is not None:
            self._apart.talking(participant_id)

    def left(self, participant_id: str) -> None:
        self._raw_ids.pop(participant_id, None)
        if self._apart is not None:
            self._apart.left(participant_id)

    async def _start_encoder(self) -> asyncio.subprocess.Process:
        return await ffmpeg(
            "-re", "-f", "s16le", "-ar", str(self.options.sample_rate), "-ac", "1", "-i", "pipe:0",
            "-ar", "48000", "-c:a", "libopus", "-application", "voip", "-b:a", "32k",
            "-payload_type", str(OPUS_PAYLOAD_TYPE), "-f", "rtp", f"rtp://127.0.0.1:{self._relay.encoder_port}",
        )  # fmt: skip

    async def _send_mix(self, decoder: asyncio.subprocess.Process) -> None:
        assert decoder.stdout is not None
        frame = int(self.options.sample_rate * FRAME_SECONDS) * 2
        try:
            while await self._send(await decoder.stdout.readexactly(frame), None):
                pass
        except asyncio.IncompleteReadError:
            self._broken(StreamingFailed("unspecifiedError", "the audio decoder stopped"))

    async def _send_apart(self, participant_id: str, pcm: bytes) -> bool:
        raw_id = self._raw_ids.get(participant_id)
        return raw_id is None or await self._send(pcm, raw_id)

    async def _send(self, pcm: bytes, raw_id: str | None) -> bool:
        """One AudioData message (``raw_id`` None: the mix); False once the stream is broken."""
        assert self._socket is not None
        try:
            await app_socket.send(self._socket, audio_data(pcm, datetime.now(UTC), raw_id).decode())
        except app_socket.AppSocketFailed as exc:
            self._broken(StreamingFailed("streamConnectionInterrupted", str(exc)))
            return False
        return True

    async def _receive_audio(self) -> None:
        assert self._socket is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self._socket:
                pcm = inbound_audio(message)
                if pcm == b"":
                    await self._restart_encoder()
                elif pcm:
                    await self._play(pcm)

    async def _play(self, pcm: bytes) -> None:
        encoder = self._encoder
        if encoder is None or encoder.stdin is None:
            return
        try:
            encoder.stdin.write(pcm)
            await encoder.stdin.drain()  # the encoder's real-time pace holds a fast app back here
        except (BrokenPipeError, ConnectionResetError):
            await self._restart_encoder()

    async def _restart_encoder(self) -> None:
        """StopAudio: what the app sent and was not played yet is dropped with the old encoder."""
        old, self._encoder = self._encoder, None
        if old is not None:
            await end_process(old)
        self._encoder = await self._start_encoder()

    def _broken(self, failure: StreamingFailed) -> None:
        log.info("media stream %s ended: %s", self.subscription_id[:8], failure)
        self._on_broken(self, failure)

    async def stop(self) -> None:
        """Close everything the stream holds; safe to call twice, or on a half-started stream."""
        cancel_others(self._tasks)
        self._tasks = []
        if self._socket is not None:
            await app_socket.close(self._socket)
            self._socket = None
        if self._apart is not None:
            apart, self._apart = self._apart, None
            await apart.stop()
        for process in [*self._decoders, *([self._encoder] if self._encoder else [])]:
            await end_process(process)
        self._decoders, self._encoder = [], None
        self._relay.close()
        if self._leg is not None:
            leg, self._leg = self._leg, None
            with contextlib.suppress(Exception):
                await leg.close()
