"""The call's audio in a Janus AudioBridge room: legs (WebRTC or plain RTP) in the mix, files
played into it, the mix or one isolated participant forwarded out, the mix recorded.

One room per call; each participant hears everyone but themself. Plain-RTP legs (telephone
calls, media streaming) join beside WebRTC ones. Every leg and announcement joins the
``shared`` forwarding group; a participant alone in a ``slot-n`` group is forwarded alone
(unmixed media streaming). Plugin API: the comment block at the top of janus_audiobridge.c.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vrooms.media import sdp
from vrooms.media.janus import JanusHandle, PluginReply
from vrooms.media.janus_support import (
    AUDIOBRIDGE,
    SHARED_GROUP,
    SLOT_GROUPS,
    JanusCallMedia,
    JanusControls,
    answer_sdp_of,
    mapped_errors,
    new_id,
    offer_jsep,
    rtp_address,
    set_recording,
    typed,
)
from vrooms.media.types import OPUS_PAYLOAD_TYPE, CallMedia, EventHandler, MediaError
from vrooms.supervision import to_the_end

T = TypeVar("T")


@dataclass
class JanusAudioLeg:
    """A participant in the call's AudioBridge room (their mic into the mix, the mix to them)."""

    handle: JanusHandle
    janus_id: int

    async def set_muted(self, muted: bool) -> None:
        # Only the call host talks to Janus, so a muted participant cannot unmute in the mix.
        with mapped_errors():
            await self.handle.request({"request": "configure", "muted": muted})

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str:
        with mapped_errors():
            offer = sdp.audio_offer(offer_sdp, may_send=may_send)
            reply = await self.handle.request({"request": "configure"}, offer_jsep(offer))
            return answer_sdp_of(reply.jsep)

    async def record(self, base: Path | None) -> None:
        # janus_audiobridge.c: "record" + "filename" on configure; the plugin appends "-audio.mjr".
        await set_recording(self.handle, base)

    async def isolate(self, slot: int | None) -> None:
        group = SHARED_GROUP if slot is None else SLOT_GROUPS[slot]
        with mapped_errors():
            await self.handle.request({"request": "configure", "group": group})

    async def close(self) -> None:
        await self.handle.detach()


async def _checked(leg: JanusAudioLeg, read: Callable[[], T]) -> T:
    """``read()`` the join's reply; a reply without what it must carry closes the leg."""
    try:
        return read()
    except BaseException:
        await leg.close()
        raise


@dataclass
class JanusForward:
    """An AudioBridge RTP forwarder (``rtp_forward``), stopped by its stream id."""

    control: JanusHandle
    media: JanusCallMedia
    stream_id: int

    async def close(self) -> None:
        with mapped_errors():
            await self.control.request(
                {
                    "request": "stop_rtp_forward",
                    "room": self.media.audio_room,
                    "secret": self.media.secret,
                    "stream_id": self.stream_id,
                }
            )


class AudioBridgePlane(JanusControls):
    """The AudioBridge half of ``JanusMediaPlane``."""

    async def play_file(self, media: CallMedia, path: Path, *, loop: bool) -> str:
        """AudioBridge ``play_file`` (an announcement, Ogg Opus): mixed into what every participant hears."""
        assert isinstance(media, JanusCallMedia)
        file_id = uuid.uuid4().hex
        with mapped_errors():
            audio, _ = await self.controls()
            await audio.request(
                {
                    "request": "play_file",
                    "room": media.audio_room,
                    "secret": media.secret,
                    "file_id": file_id,
                    "group": SHARED_GROUP,
                    "filename": str(path),
                    "loop": loop,
                }
            )
        return file_id

    async def stop_file(self, media: CallMedia, file_id: str) -> None:
        assert isinstance(media, JanusCallMedia)
        with mapped_errors():
            audio, _ = await self.controls()
            await audio.request(
                {"request": "stop_file", "room": media.audio_room, "secret": media.secret, "file_id": file_id}
            )

    async def forward_isolated(self, media: CallMedia, slot: int, to: tuple[str, int]) -> JanusForward:
        assert isinstance(media, JanusCallMedia)
        with mapped_errors():
            audio, _ = await self.controls()
            reply = await audio.request(
                {
                    "request": "rtp_forward",
                    "room": media.audio_room,
                    "secret": media.secret,
                    "group": SLOT_GROUPS[slot],
                    "codec": "opus",
                    "ptype": OPUS_PAYLOAD_TYPE,
                    "host": to[0],
                    "port": to[1],
                    **self.admin(),
                }
            )
        if "stream_id" not in reply.data:
            raise MediaError("the media server did not start the forward")
        return JanusForward(audio, media, int(reply.data["stream_id"]))

    async def record_mix(self, media: CallMedia, path: Path | None) -> None:
        """AudioBridge ``enable_recording``: the mixer writes the room's mix as 16-bit WAV at 48 kHz."""
        assert isinstance(media, JanusCallMedia)
        body: dict[str, Any] = {"request": "enable_recording", "room": media.audio_room, "secret": media.secret}
        body["record"] = path is not None
        if path is not None:
            body["record_file"] = str(path)
        with mapped_errors():
            audio, _ = await self.controls()
            await audio.request(body)

    async def _join_mix(
        self,
        media: CallMedia,
        *,
        display: str,
        muted: bool,
        on_event: EventHandler,
        transport: dict[str, Any],
        jsep: dict[str, str] | None = None,
    ) -> tuple[JanusAudioLeg, PluginReply]:
        """A new handle joined to the call's AudioBridge room; ``transport``: its codec and (for RTP) ``rtp``."""
        assert isinstance(media, JanusCallMedia)
        janus_id = new_id()
        handle = await self.connection.attach(AUDIOBRIDGE, typed(on_event, janus_id))
        try:
            body = {
                "request": "join",
                "room": media.audio_room,
                "id": janus_id,
                "display": display,
                "muted": muted,
                "group": SHARED_GROUP,
            }
            return JanusAudioLeg(handle, janus_id), await handle.request({**body, **transport}, jsep)
        except BaseException:
            await to_the_end(handle.detach())  # a second cancel must not leave the handle
            raise

    async def join_audio(
        self, media: CallMedia, *, display: str, may_send: bool, offer_sdp: str, on_event: EventHandler
    ) -> tuple[JanusAudioLeg, str]:
        with mapped_errors():
            offer = sdp.audio_offer(offer_sdp, may_send=may_send)
            leg, reply = await self._join_mix(
                media,
                display=display,
                muted=not may_send,
                on_event=on_event,
                transport={"codec": "opus"},
                jsep=offer_jsep(offer),
            )
            return leg, await _checked(leg, lambda: answer_sdp_of(reply.jsep))

    async def join_rtp(
        self,
        media: CallMedia,
        *,
        display: str,
        send_to: tuple[str, int],
        muted: bool,
        on_event: EventHandler,
        codec: str = "pcmu",
    ) -> tuple[JanusAudioLeg, tuple[str, int]]:
        """A plain-RTP participant ("rtp" object of ``join``); G.711 needs no payload type, Opus takes 111."""
        rtp: dict[str, Any] = {"ip": send_to[0], "port": send_to[1]}
        if codec == "opus":
            rtp["payload_type"] = OPUS_PAYLOAD_TYPE
        with mapped_errors():
            leg, reply = await self._join_mix(
                media, display=display, muted=muted, on_event=on_event, transport={"codec": codec, "rtp": rtp}
            )
            return leg, await _checked(leg, lambda: rtp_address(reply.data))
