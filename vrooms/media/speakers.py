"""The audio of the call's dominant speakers apart, as PCM: what unmixed media streaming and
live captions both consume.

The AudioBridge forwards each isolation slot's participant alone (``MediaPlane.forward_isolated``,
``ISOLATED_SLOTS`` of them, as ACS's four dominant speakers); one ffmpeg decoder per slot turns
the Opus RTP into 20 ms frames of 16-bit mono PCM at the rate asked for, handed to ``sink`` with
the participant who holds the slot. Whoever is heard takes a slot, the one silent longest making
room (``SpeakerSlots``); beyond the slots, the others are not heard apart until they talk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from vrooms.media.speaker_slots import SpeakerSlots
from vrooms.media.tools import free_udp_port
from vrooms.media.types import ISOLATED_SLOTS, OPUS_PAYLOAD_TYPE, CallMedia, Forward, MediaError, MediaPlane
from vrooms.processes import tied_to_parent
from vrooms.supervision import cancel_others

log = logging.getLogger("vrooms.media")

FRAME_SECONDS = 0.02
_DECODER_TRIES = 3
_FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]

# Puts a participant's audio alone on a slot (None: back to only the mix).
Isolate = Callable[[str, int | None], Awaitable[None]]
# A frame of a participant; False: stop reading (the consumer is gone).
FrameSink = Callable[[str, bytes], Awaitable[bool]]


def _sdp(port: int) -> bytes:
    """What a decoder listens for: Opus (RFC 7587) from the AudioBridge on loopback."""
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=vrooms\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {OPUS_PAYLOAD_TYPE}\r\na=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\n"
    ).encode()


async def ffmpeg(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *tied_to_parent([*_FFMPEG, *args]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def start_decoder(port: int, sample_rate: int) -> asyncio.subprocess.Process:
    """ffmpeg reading Opus RTP at ``port``, writing 16-bit mono PCM at ``sample_rate`` to stdout."""
    decoder = await ffmpeg(
        "-protocol_whitelist", "pipe,udp,rtp", "-fflags", "nobuffer", "-flags", "low_delay",
        "-probesize", "32", "-analyzeduration", "0", "-f", "sdp", "-i", "pipe:0",
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "pipe:1",
    )  # fmt: skip
    assert decoder.stdin is not None
    decoder.stdin.write(_sdp(port))  # the SDP on stdin: no file to clean up
    decoder.stdin.close()
    return decoder


async def end_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()


class SpeakersApart:
    def __init__(
        self,
        plane: MediaPlane,
        media: CallMedia,
        sample_rate: int,
        *,
        isolate: Isolate,
        sink: FrameSink,
        on_stopped: Callable[[str], None],
    ) -> None:
        """``on_stopped(why)``: a decoder ended by itself (the forward or ffmpeg failed)."""
        self.slots = SpeakerSlots(ISOLATED_SLOTS)
        self.sample_rate = sample_rate
        self._plane = plane
        self._media = media
        self._isolate = isolate
        self._sink = sink
        self._on_stopped = on_stopped
        self._members: set[str] = set()
        self._forwards: dict[int, Forward] = {}
        self._decoders: list[asyncio.subprocess.Process] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Slot changes for the media plane, applied in order by one task (_apply_moves).
        self._moves: asyncio.Queue[tuple[str, int, str | None]] = asyncio.Queue()

    async def start(self) -> None:
        """A forward and a decoder per slot; on failure nothing is left running."""
        try:
            for slot in range(ISOLATED_SLOTS):
                decoder = await self._open_slot(slot)
                self._tasks.append(asyncio.create_task(self._read(decoder, slot)))
            self._tasks.append(asyncio.create_task(self._apply_moves()))
        except BaseException:
            await self.stop()
            raise

    async def _open_slot(self, slot: int) -> asyncio.subprocess.Process:
        """A decoder on a free port, and the slot's forward to it (in place of an earlier one)."""
        earlier = self._forwards.pop(slot, None)
        if earlier is not None:
            with contextlib.suppress(MediaError):
                await earlier.close()
        port = free_udp_port()
        decoder = await start_decoder(port, self.sample_rate)
        self._decoders.append(decoder)
        self._forwards[slot] = await self._plane.forward_isolated(self._media, slot, ("127.0.0.1", port))
        return decoder

    def joined(self, participant_id: str) -> None:
        self._members.add(participant_id)
        self._move(participant_id, talking=False)

    def talking(self, participant_id: str) -> None:
        self._move(participant_id, talking=True)

    def left(self, participant_id: str) -> None:
        self._members.discard(participant_id)
        self.slots.remove(participant_id)

    def _move(self, participant_id: str, *, talking: bool) -> None:
        if participant_id not in self._members:
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

    async def _read(self, decoder: asyncio.subprocess.Process, slot: int) -> None:
        """The slot's frames to the sink. A decoder that ends before its first frame most likely lost
        its port to another process between ``free_udp_port`` and its bind: the slot gets a new port,
        a new decoder and a new forward, ``_DECODER_TRIES`` times in all."""
        frame = int(self.sample_rate * FRAME_SECONDS) * 2
        for attempt in range(1, _DECODER_TRIES + 1):
            assert decoder.stdout is not None
            read = 0
            try:
                while True:
                    pcm = await decoder.stdout.readexactly(frame)
                    read += 1
                    occupant = self.slots.occupants[slot]
                    if occupant is not None and not await self._sink(occupant, pcm):
                        return
            except asyncio.IncompleteReadError:
                if read or attempt == _DECODER_TRIES:
                    break
                log.warning("the audio decoder of slot %d ended before its first frame; opening another", slot)
                try:
                    decoder = await self._open_slot(slot)
                except MediaError as exc:
                    self._on_stopped(f"the slot's forward failed: {exc}")
                    return
        self._on_stopped("the audio decoder stopped")

    async def stop(self) -> None:
        """Close everything; safe to call twice, or on a half-started one."""
        cancel_others(self._tasks)
        self._tasks = []
        forwards, self._forwards = list(self._forwards.values()), {}
        for forward in forwards:
            with contextlib.suppress(MediaError):
                await forward.close()
        for occupant in [o for o in self.slots.occupants if o is not None]:
            self.slots.remove(occupant)
            await self._isolate(occupant, None)
        for process in self._decoders:
            await end_process(process)
        self._decoders = []
