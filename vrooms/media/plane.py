"""What the call host asks of the media plane, in call terms, over Janus plugins.

Audio: one AudioBridge room per call (Janus mixes; each participant hears everyone
but themself). Video and screen share: one VideoRoom room per call; each camera or
screen is a publisher feed, each participant has one multistream subscriber handle.
Plugin APIs: the comment blocks at the top of janus_audiobridge.c and
janus_videoroom.c (janus-gateway 1.1).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from vrooms.media.janus import EventHandler, JanusConnection, JanusError, JanusHandle
from vrooms.media.sdp import only_receive

AUDIOBRIDGE = "janus.plugin.audiobridge"
VIDEOROOM = "janus.plugin.videoroom"


def _new_id() -> int:
    # Janus ids are JSON numbers; stay inside the 53-bit range every JSON parser keeps exact.
    return secrets.randbelow(2**52) + 1


def _ignore(_event: dict[str, Any]) -> None:
    """Control handles only make synchronous requests; their events carry nothing for us."""


def _offer(sdp: str) -> dict[str, str]:
    return {"type": "offer", "sdp": sdp}


def _answer_sdp(jsep: dict[str, Any] | None) -> str:
    if not jsep or "sdp" not in jsep:
        raise JanusError(0, "Janus replied without an SDP")
    return str(jsep["sdp"])


@dataclass
class CallMedia:
    """The Janus rooms of one call. The secret guards moderation requests (mute, kick)."""

    audio_room: int
    video_room: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))


@dataclass
class AudioLeg:
    """A participant in the call's AudioBridge room (their mic into the mix, the mix to them)."""

    handle: JanusHandle
    janus_id: int

    async def set_muted(self, muted: bool) -> None:
        # Only the call host talks to Janus, so a muted participant cannot unmute in the mix.
        await self.handle.request({"request": "configure", "muted": muted})

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str:
        sdp = offer_sdp if may_send else only_receive(offer_sdp)
        reply = await self.handle.request({"request": "configure"}, _offer(sdp))
        return _answer_sdp(reply.jsep)

    async def close(self) -> None:
        await self.handle.detach()


@dataclass
class VideoFeed:
    """One published camera or screen in the call's VideoRoom room."""

    handle: JanusHandle
    feed_id: int
    # Janus refuses subscriptions to a feed whose WebRTC session is not up yet.
    ready: bool = False

    async def close(self) -> None:
        await self.handle.detach()


@dataclass
class VideoSubscription:
    """A participant's multistream subscriber handle: every feed they receive."""

    handle: JanusHandle
    feeds: set[int] = field(default_factory=set)
    streams: list[dict[str, Any]] = field(default_factory=list)

    async def start(self, answer_sdp: str) -> None:
        await self.handle.request({"request": "start"}, {"type": "answer", "sdp": answer_sdp})

    async def close(self) -> None:
        await self.handle.detach()


class MediaPlane:
    """Rooms and legs on one connected Janus."""

    def __init__(self, connection: JanusConnection, admin_key: str | None, video_bitrate: int) -> None:
        self.connection = connection
        self.admin_key = admin_key
        self.video_bitrate = video_bitrate
        self._audio_control: JanusHandle | None = None
        self._video_control: JanusHandle | None = None

    async def _controls(self) -> tuple[JanusHandle, JanusHandle]:
        if self._audio_control is None or self._video_control is None:
            self._audio_control = await self.connection.attach(AUDIOBRIDGE, _ignore)
            self._video_control = await self.connection.attach(VIDEOROOM, _ignore)
        return self._audio_control, self._video_control

    def _admin(self) -> dict[str, str]:
        return {"admin_key": self.admin_key} if self.admin_key else {}

    async def create_call(self, description: str, max_publishers: int) -> CallMedia:
        audio, video = await self._controls()
        media = CallMedia(audio_room=_new_id(), video_room=_new_id())
        await audio.request(
            {
                "request": "create",
                "room": media.audio_room,
                "description": description,
                "secret": media.secret,
                "sampling_rate": 48000,
                # "talking" / "stopped-talking" events drive the active speaker.
                "audiolevel_event": True,
                "audio_active_packets": 50,
                "audio_level_average": 40,
                # Plain-RTP legs (telephone calls over SIP, G.711) mix in beside WebRTC ones.
                "allow_rtp_participants": True,
                **self._admin(),
            }
        )
        await video.request(
            {
                "request": "create",
                "room": media.video_room,
                "description": description,
                "secret": media.secret,
                "publishers": max_publishers,
                "videocodec": "vp8",
                # The cap Janus announces to every publisher (REMB).
                "bitrate": self.video_bitrate,
                "notify_joining": False,
                **self._admin(),
            }
        )
        return media

    async def destroy_call(self, media: CallMedia) -> None:
        audio, video = await self._controls()
        await audio.request({"request": "destroy", "room": media.audio_room, "secret": media.secret})
        await video.request({"request": "destroy", "room": media.video_room, "secret": media.secret})

    async def join_audio(
        self, media: CallMedia, *, display: str, may_send: bool, offer_sdp: str, on_event: EventHandler
    ) -> tuple[AudioLeg, str]:
        """Join the mix. Without send rights the offer is made receive-only and the leg is muted in Janus."""
        handle = await self.connection.attach(AUDIOBRIDGE, on_event)
        janus_id = _new_id()
        sdp = offer_sdp if may_send else only_receive(offer_sdp)
        try:
            reply = await handle.request(
                {
                    "request": "join",
                    "room": media.audio_room,
                    "id": janus_id,
                    "display": display,
                    "muted": not may_send,
                    "codec": "opus",
                },
                _offer(sdp),
            )
            return AudioLeg(handle, janus_id), _answer_sdp(reply.jsep)
        except BaseException:
            await handle.detach()
            raise

    async def publish(
        self, media: CallMedia, *, display: str, offer_sdp: str, on_event: EventHandler
    ) -> tuple[VideoFeed, str]:
        handle = await self.connection.attach(VIDEOROOM, on_event)
        feed_id = _new_id()
        try:
            await handle.request(
                {"request": "join", "ptype": "publisher", "room": media.video_room, "id": feed_id, "display": display}
            )
            reply = await handle.request({"request": "publish"}, _offer(offer_sdp))
            return VideoFeed(handle, feed_id), _answer_sdp(reply.jsep)
        except BaseException:
            await handle.detach()
            raise

    async def subscribe(self, media: CallMedia, feeds: set[int]) -> tuple[VideoSubscription, str]:
        """A subscriber handle receiving ``feeds``; returns Janus's offer for the client to answer."""
        handle = await self.connection.attach(VIDEOROOM, _ignore)
        try:
            reply = await handle.request(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": media.video_room,
                    "use_msid": True,
                    "streams": [{"feed": feed} for feed in sorted(feeds)],
                }
            )
        except BaseException:
            await handle.detach()
            raise
        subscription = VideoSubscription(handle, set(feeds), reply.data.get("streams", []))
        return subscription, _answer_sdp(reply.jsep)

    async def update_subscription(self, subscription: VideoSubscription, feeds: set[int]) -> str | None:
        """Change what a subscriber receives; Janus's new offer, or None if nothing changed."""
        add, remove = feeds - subscription.feeds, subscription.feeds - feeds
        if not add and not remove:
            return None
        body: dict[str, Any] = {"request": "update"}
        if add:
            body["subscribe"] = [{"feed": feed} for feed in sorted(add)]
        if remove:
            body["unsubscribe"] = [{"feed": feed} for feed in sorted(remove)]
        reply = await subscription.handle.request(body)
        subscription.feeds = set(feeds)
        subscription.streams = reply.data.get("streams", subscription.streams)
        return str(reply.jsep["sdp"]) if reply.jsep else None
