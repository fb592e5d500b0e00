"""Media streaming: the call's audio to the app's WebSocket, as ACS sends it, and the app's audio back.

A mixed stream is one plain-RTP Opus leg in the call's AudioBridge room: Janus sends it the
mix of everyone but itself (so an app never hears what it says), and mixes what it sends
into what everyone hears. The leg's UDP socket is ours (``RtpRelay``); ffmpeg processes
(Debian's) sit between it and the WebSocket: one decodes the RTP into PCM at the rate the
app asked for, one encodes the app's PCM back into Opus RTP, paced in real time (``-re``),
so an app may send faster than real time. Unmixed, as ACS does it, carries up to four
participants apart (``ISOLATED_SLOTS``; the AudioBridge forwards each slot's participant
alone, one decoder each): whoever is heard takes a slot, the one silent longest making
room (``SpeakerSlots``); the leg then exists only to send the app's audio back.

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
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from vrooms.automation.rtp_relay import RtpRelay
from vrooms.automation.schemas import StreamingOptions
from vrooms.automation.speaker_slots import SpeakerSlots
from vrooms.automation.stream_messages import FRAME_SECONDS, audio_data, inbound_audio, metadata
from vrooms.egress import EgressPolicy, EgressRefused
from vrooms.media.tools import free_udp_port
from vrooms.media.types import (
    ISOLATED_SLOTS,
    OPUS_PAYLOAD_TYPE,
    AudioLeg,
    CallMedia,
    Forward,
    MediaError,
    MediaEvent,
    MediaPlane,
)
from vrooms.processes import tied_to_parent

log = logging.getLogger("vrooms.automation")

_CONNECT_SECONDS = 10.0
_CLOSE_SECONDS = 2.0
# A frame that cannot be handed to the socket in this long means the app stopped reading.
_STALL_SECONDS = 5.0
_SEND_BUFFER_BYTES = 64 * 1024
_MAX_MESSAGE_BYTES = 1 << 20
_FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]


class StreamingFailed(Exception):
    """The stream could not start or broke; ``detail`` is ACS's ``mediaStreamingStatusDetails``."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


def _sdp(port: int) -> bytes:
    """What the decoder listens for: Opus (RFC 7587) from the AudioBridge on loopback."""
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=vrooms\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {OPUS_PAYLOAD_TYPE}\r\na=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\n"
    ).encode()


def _ignore(_event: MediaEvent) -> None:
    """The stream's leg has no participant whose state its media events could change."""


Isolate = Callable[[str, int | None], Awaitable[None]]


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
        self.slots = SpeakerSlots(ISOLATED_SLOTS)
        self._plane = plane
        self._media = media
        self._egress = egress
        self._isolate = isolate
        self._on_broken = on_broken
        self._leg: AudioLeg | None = None
        self._relay = RtpRelay()
        self._decoders: list[asyncio.subprocess.Process] = []
        self._forwards: list[Forward] = []
        self._encoder: asyncio.subprocess.Process | None = None
        self._socket: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._raw_ids: dict[str, str] = {}
        # Slot changes for the media plane, applied in order by one task (_apply_moves).
        self._moves: asyncio.Queue[tuple[str, int, str | None]] = asyncio.Queue()

    async def start(self) -> None:
        """Leg, decoders, WebSocket and metadata, in that order; on failure nothing is left running."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        decoders: list[tuple[asyncio.subprocess.Process, int | None]] = []
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
                decoders.append((await self._start_decoder(self._relay.decoder_port), None))
            self._relay.connect(janus)
        if not self.options.mixed:
            for slot in range(ISOLATED_SLOTS):
                port = free_udp_port()
                decoders.append((await self._start_decoder(port), slot))
                self._forwards.append(await self._plane.forward_isolated(self._media, slot, ("127.0.0.1", port)))
        if self.options.bidirectional:
            self._encoder = await self._start_encoder()
        self._socket = await self._connect()
        await self._socket.send(metadata(self.subscription_id, self.options.sample_rate).decode())
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_audio(decoder, slot)) for decoder, slot in decoders]
        if not self.options.mixed:
            self._tasks.append(loop.create_task(self._apply_moves()))
        if self.options.bidirectional:
            self._tasks.append(loop.create_task(self._receive_audio()))

    async def _connect(self) -> ClientConnection:
        """The app's WebSocket, at an address the egress policy allows (checked now, and connected
        to by address: a name that resolves elsewhere a moment later changes nothing)."""
        url = self.options.transport_url
        try:
            addresses = await self._egress.check(url, ("ws", "wss"))
            by_address: dict[str, Any] = {"host": addresses[0]} if addresses else {}
            connection = await websockets.connect(
                url,
                open_timeout=_CONNECT_SECONDS,
                close_timeout=_CLOSE_SECONDS,
                max_size=_MAX_MESSAGE_BYTES,
                **by_address,
            )
        except EgressRefused as exc:
            raise StreamingFailed("initialWebSocketConnectionFailed", f"transportUrl refused: {exc}") from None
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise StreamingFailed("initialWebSocketConnectionFailed", f"could not open the WebSocket: {exc}") from None
        # Real-time audio: a consumer more than a moment behind is stalled, not late. A small send
        # buffer makes a stall show as a send that does not finish (``_STALL_SECONDS``).
        raw = connection.transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
        connection.transport.set_write_buffer_limits(high=_SEND_BUFFER_BYTES)
        return connection

    async def _start_decoder(self, port: int) -> asyncio.subprocess.Process:
        decoder = await self._ffmpeg(
            "-protocol_whitelist", "pipe,udp,rtp", "-fflags", "nobuffer", "-flags", "low_delay",
            "-probesize", "32", "-analyzeduration", "0", "-f", "sdp", "-i", "pipe:0",
            "-f", "s16le", "-ar", str(self.options.sample_rate), "-ac", "1", "pipe:1",
        )  # fmt: skip
        self._decoders.append(decoder)
        assert decoder.stdin is not None
        decoder.stdin.write(_sdp(port))  # the SDP on stdin: no file to clean up
        decoder.stdin.close()
        return decoder

    # -- who is streamed apart (unmixed) --------------------------------------------------------

    def joined(self, participant_id: str, raw_id: str) -> None:
        self._raw_ids[participant_id] = raw_id
        self._move(participant_id, talking=False)

    def talking(self, participant_id: str) -> None:
        self._move(participant_id, talking=True)

    def left(self, participant_id: str) -> None:
        self._raw_ids.pop(participant_id, None)
        self.slots.remove(participant_id)

    def _move(self, participant_id: str, *, talking: bool) -> None:
        if self.options.mixed or participant_id not in self._raw_ids:
            return
        change = self.slots.place(participant_id, talking=talking)
        if change is not None:
            self._moves.put_nowait((participant_id, *change))

    async def _apply_moves(self) -> None:
        while True:
            participant_id, slot, evicted = await self._moves.get()
            if evicted is not None:
                await self._isolate(evicted, None)
            await self._isolate(participant_id, slot)

    def _speaker(self, slot: int | None) -> tuple[bool, str | None]:
        """Whether a frame of this decoder is sent, and as whose (None: the mix)."""
        if slot is None:
            return True, None
        occupant = self.slots.occupants[slot]
        raw_id = self._raw_ids.get(occupant) if occupant is not None else None
        return raw_id is not None, raw_id

    async def _ffmpeg(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *tied_to_parent([*_FFMPEG, *args]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def _start_encoder(self) -> asyncio.subprocess.Process:
        return await self._ffmpeg(
            "-re", "-f", "s16le", "-ar", str(self.options.sample_rate), "-ac", "1", "-i", "pipe:0",
            "-ar", "48000", "-c:a", "libopus", "-application", "voip", "-b:a", "32k",
            "-payload_type", str(OPUS_PAYLOAD_TYPE), "-f", "rtp", f"rtp://127.0.0.1:{self._relay.encoder_port}",
        )  # fmt: skip

    async def _send_audio(self, decoder: asyncio.subprocess.Process, slot: int | None) -> None:
        assert decoder.stdout is not None and self._socket is not None
        frame = int(self.options.sample_rate * FRAME_SECONDS) * 2
        try:
            while True:
                pcm = await decoder.stdout.readexactly(frame)
                send, raw_id = self._speaker(slot)
                if send:
                    message = audio_data(pcm, datetime.now(UTC), raw_id).decode()
                    await asyncio.wait_for(self._socket.send(message), _STALL_SECONDS)
        except TimeoutError:
            self._broken(StreamingFailed("streamConnectionInterrupted", "the app stopped reading the WebSocket"))
        except asyncio.IncompleteReadError:
            self._broken(StreamingFailed("unspecifiedError", "the audio decoder stopped"))
        except websockets.ConnectionClosed:
            self._broken(StreamingFailed("streamConnectionInterrupted", "the app closed the WebSocket"))

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
            await _end(old)
        self._encoder = await self._start_encoder()

    def _broken(self, failure: StreamingFailed) -> None:
        log.info("media stream %s ended: %s", self.subscription_id[:8], failure)
        self._on_broken(self, failure)

    async def stop(self) -> None:
        """Close everything the stream holds; safe to call twice, or on a half-started stream."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks = []
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket.close(), _CLOSE_SECONDS)
            self._socket.transport.abort()  # a consumer that reads nothing never completes the close
            self._socket = None
        forwards, self._forwards = self._forwards, []
        for forward in forwards:
            with contextlib.suppress(MediaError):
                await forward.close()
        for occupant in [o for o in self.slots.occupants if o is not None]:
            self.slots.remove(occupant)
            await self._isolate(occupant, None)
        for process in [*self._decoders, *([self._encoder] if self._encoder else [])]:
            await _end(process)
        self._decoders, self._encoder = [], None
        self._relay.close()
        if self._leg is not None:
            leg, self._leg = self._leg, None
            with contextlib.suppress(Exception):
                await leg.close()


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
