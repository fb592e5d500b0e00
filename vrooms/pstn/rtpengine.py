"""Trunk media on rtpengine: started and supervised by vrooms (or an external one), driven over "ng".

rtpengine relays G.711 between the carrier and the room's AudioBridge, reports the
RFC 4733 digits a phone sends (``--dtmf-log-dest``: one JSON datagram per digit),
injects digits toward a phone and plays a file to one leg only: the three things
Janus 1.1's AudioBridge cannot do (see ../shared/reference/pstn-media.md).

Each phone leg is one rtpengine call (``call-id``) with two tags: ``room`` (the
AudioBridge side) and ``phone`` (the carrier side). The AudioBridge opens its port
only once told where to send, and rtpengine tells that only in its answer; so the
room side is first signalled at the discard port, then re-signalled with the
AudioBridge's port (``port latching`` keeps every port the carrier was given).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from vrooms.media.tools import free_udp_port
from vrooms.processes import stop_process, tied_to_parent
from vrooms.pstn.ng import NgClient, NgError
from vrooms.pstn.numbers import DTMF_TONES

log = logging.getLogger("vrooms.pstn")

ROOM_TAG = "room"
PHONE_TAG = "phone"
# "port latching": a re-offer that names the AudioBridge's port keeps the ports the carrier knows.
_FLAGS = ["inject-DTMF", "port latching"]
_READY_TIMEOUT_SECONDS = 10.0
# The room side's address until the AudioBridge has opened its port (RFC 863 discard).
DISCARD_PORT = 9

DtmfHandler = Callable[[str, str, str], None]  # rtpengine call id, tag that sent it, tone


def room_side_sdp(port: int = DISCARD_PORT, version: int = 1) -> str:
    """The AudioBridge side: PCMU and RFC 4733 events, at ``port`` (the discard port until it has one)."""
    return (
        "v=0\r\n"
        f"o=vrooms 1 {version} IN IP4 127.0.0.1\r\n"
        "s=vrooms\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def audio_port(sdp: str) -> int:
    """The port of the first audio section (rtpengine's own SDPs: always one, always well-formed)."""
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise NgError("rtpengine's SDP has no audio section")


def write_silence(path: Path, milliseconds: int = 200) -> Path:
    """A short silent WAV: played toward the AudioBridge to open its plain-RTP leg (see ``wake_room``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * (8 * milliseconds))
    return path


class Rtpengine:
    """The ng commands a phone leg uses, in phone-leg terms."""

    def __init__(self, client: NgClient, silence: Path) -> None:
        self.client = client
        self.silence = silence

    async def ping(self) -> None:
        await self.client.request("ping")

    async def offer(self, call_id: str, from_tag: str, sdp: str) -> str:
        reply = await self.client.request(
            "offer",
            **{"call-id": call_id, "from-tag": from_tag, "sdp": sdp, "flags": _FLAGS, "replace": ["origin"]},
        )
        return str(reply["sdp"])

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str) -> str:
        reply = await self.client.request(
            "answer",
            **{"call-id": call_id, "from-tag": from_tag, "to-tag": to_tag, "sdp": sdp, "flags": _FLAGS},
        )
        return str(reply["sdp"])

    async def delete(self, call_id: str) -> None:
        with contextlib.suppress(NgError):  # already gone (timed out, or rtpengine restarted)
            await self.client.request("delete", **{"call-id": call_id})

    async def send_dtmf(self, call_id: str, tone: str, duration_ms: int = 100) -> None:
        """RFC 4733 toward the phone: ``from-tag`` names the side that sends it, the room."""
        await self.client.request(
            "play DTMF", **{"call-id": call_id, "from-tag": ROOM_TAG, "code": tone, "duration": duration_ms}
        )

    async def wake_room(self, call_id: str) -> None:
        """Send the AudioBridge a little silence: it mixes for a plain-RTP leg only once it has
        received a packet (janus_audiobridge.c, plain RTP), and a phone may stay silent."""
        await self.client.request("play media", **{"call-id": call_id, "from-tag": ROOM_TAG, "file": str(self.silence)})

    async def play_to_phone(self, call_id: str, file: Path) -> None:
        """A file only the phone hears (``from-tag`` names the listener here)."""
        await self.client.request("play media", **{"call-id": call_id, "from-tag": PHONE_TAG, "file": str(file)})

    async def stop_playing_to_phone(self, call_id: str) -> None:
        await self.client.request("stop media", **{"call-id": call_id, "from-tag": PHONE_TAG})


class _DtmfDatagrams(asyncio.DatagramProtocol):
    def __init__(self, on_tone: DtmfHandler) -> None:
        self.on_tone = on_tone

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            report = orjson.loads(data)
            event = int(report["event"])
            call_id, tag = str(report["callid"]), str(report["source_tag"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("unreadable DTMF report from rtpengine (%d bytes)", len(data))
            return
        if 0 <= event < len(DTMF_TONES):
            self.on_tone(call_id, tag, DTMF_TONES[event])


async def listen_dtmf(port: int, on_tone: DtmfHandler) -> tuple[asyncio.DatagramTransport, int]:
    """rtpengine's DTMF reports, on ``port`` (0: one the kernel picks, bound here and kept); the
    transport and its port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _DtmfDatagrams(on_tone), local_addr=("127.0.0.1", port))
    return transport, int(transport.get_extra_info("sockname")[1])


class RtpengineProcess:
    """One rtpengine child in userspace (no kernel module): its ports, its log, its lifetime."""

    def __init__(self, binary: str, folder: Path, port_range: str, dtmf_port: int) -> None:
        self.binary = binary
        self.folder = folder
        self.port_range = port_range
        self.dtmf_port = dtmf_port
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Rtpengine:
        self.folder.mkdir(parents=True, exist_ok=True)
        ng_port = free_udp_port()
        low, high = self.port_range.split("-")
        log_file = (self.folder / "rtpengine.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *tied_to_parent([self.binary]),
            "--config-file=none",
            "--interface=127.0.0.1",
            f"--listen-ng=127.0.0.1:{ng_port}",
            "--foreground",
            "--log-stderr",
            "--table=-1",
            f"--port-min={low}",
            f"--port-max={high}",
            f"--dtmf-log-dest=127.0.0.1:{self.dtmf_port}",
            "--endpoint-learning=immediate",
            "--delete-delay=0",
            f"--pidfile={self.folder / 'rtpengine.pid'}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        log_file.close()
        client = NgClient("127.0.0.1", ng_port)
        await client.open()
        engine = Rtpengine(client, write_silence(self.folder / "silence.wav"))
        await self._wait_ready(engine)
        log.info("rtpengine started (pid %d, ng on 127.0.0.1:%d)", self.process.pid, ng_port)
        return engine

    async def _wait_ready(self, engine: Rtpengine) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                break
            try:
                await engine.ping()
                return
            except NgError:
                continue
        engine.client.close()
        await self.stop()
        raise RuntimeError(f"rtpengine did not start; see {self.folder}/rtpengine.log")

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> None:
        await stop_process(self.process)
