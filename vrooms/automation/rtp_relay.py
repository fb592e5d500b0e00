"""The media stream's plain-RTP leg in the AudioBridge: one UDP socket between Janus and the ffmpeg
decoder and encoder on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vrooms.media.tools import free_udp_port
from vrooms.media.types import OPUS_PAYLOAD_TYPE

# An Opus 20 ms CELT frame of silence (RFC 6716 section 3.1) in an RTP packet of the leg's type.
_SILENCE = bytes([0x80, OPUS_PAYLOAD_TYPE, 0, 1, 0, 0, 0, 0, 0, 0, 0x5E, 0xED, 0xF8, 0xFF, 0xFE])


class _Forward(asyncio.DatagramProtocol):
    def __init__(self, forward: Callable[[bytes], None]) -> None:
        self.forward = forward

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.forward(data)


class RtpRelay:
    """The leg's one UDP socket, symmetric as the AudioBridge needs it: its plain-RTP socket is
    connected to the address it sends to and takes packets from that address alone, and it sends
    the mix only once it has heard from it (janus_audiobridge.c). The decoder gets what Janus
    sends; what the encoder sends leaves from this socket."""

    def __init__(self) -> None:
        self.janus_side: asyncio.DatagramTransport | None = None
        self.encoder_side: asyncio.DatagramTransport | None = None
        self.janus: tuple[str, int] | None = None
        self.decoder_port = free_udp_port()

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        self.janus_side, _ = await loop.create_datagram_endpoint(
            lambda: _Forward(self._to_decoder), local_addr=("127.0.0.1", 0)
        )
        self.encoder_side, _ = await loop.create_datagram_endpoint(
            lambda: _Forward(self._to_janus), local_addr=("127.0.0.1", 0)
        )
        return int(self.janus_side.get_extra_info("sockname")[1])

    @property
    def encoder_port(self) -> int:
        assert self.encoder_side is not None
        return int(self.encoder_side.get_extra_info("sockname")[1])

    def connect(self, janus: tuple[str, int]) -> None:
        self.janus = janus
        self._to_janus(_SILENCE)

    def _to_decoder(self, packet: bytes) -> None:
        if self.janus_side is not None:
            self.janus_side.sendto(packet, ("127.0.0.1", self.decoder_port))

    def _to_janus(self, packet: bytes) -> None:
        if self.janus_side is not None and self.janus is not None:
            self.janus_side.sendto(packet, self.janus)

    def close(self) -> None:
        for transport in (self.janus_side, self.encoder_side):
            if transport is not None:
                transport.close()
        self.janus_side = self.encoder_side = None
