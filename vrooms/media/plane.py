"""The media plane over Janus plugins: ``media.types`` implemented with AudioBridge and VideoRoom.

Audio: one AudioBridge room per call (Janus mixes; each participant hears everyone
but themself). Video and screen share: one VideoRoom room per call; each camera or
screen is a publisher feed of one video stream, each participant has one multistream
subscriber handle that takes exactly that stream of each feed (by ``mid``), never
anything else a publisher might carry. Audio for chosen participants only (a targeted
prompt) is a VideoRoom remote publisher of one audio stream, taken by their handles alone.
Plugin APIs: the comment blocks at the top of janus_audiobridge.c and janus_videoroom.c
(janus-gateway 1.1).

Janus vocabulary stops here: replies, events and errors leave this module as the
typed values of ``media.types``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vrooms.media import sdp
from vrooms.media.janus import EventHandler as RawEventHandler
from vrooms.media.janus import JanusConnection, JanusError, JanusHandle, JanusUnavailable, PluginReply
from vrooms.media.types import (
    ISOLATED_SLOTS,
    OPUS_PAYLOAD_TYPE,
    CallMedia,
    Connected,
    EventHandler,
    HungUp,
    MediaError,
    MediaEvent,
    MediaUnavailable,
    OfferRefused,
    ReceivedStream,
    Talking,
    VideoSubscription,
)

log = logging.getLogger("vrooms.media")

AUDIOBRIDGE = "janus.plugin.audiobridge"
VIDEOROOM = "janus.plugin.videoroom"
# AudioBridge forwarding groups (janus_audiobridge.c, "groups"; 5 at most per room): every leg is in
# the shared one, and one at a time may be alone in a slot's group, whose forwarder then carries
# that participant alone (unmixed media streaming). Groups do not change the mix anyone hears.
_SHARED_GROUP = "shared"
_SLOT_GROUPS = tuple(f"slot-{n}" for n in range(ISOLATED_SLOTS))


def _new_id() -> int:
    # Janus ids are JSON numbers; stay inside the 53-bit range every JSON parser keeps exact.
    return secrets.randbelow(2**52) + 1


def _ignore(_event: dict[str, Any]) -> None:
    """Control handles only make synchronous requests; their events carry nothing for us."""


def _offer(sdp: str) -> dict[str, str]:
    return {"type": "offer", "sdp": sdp}


def _answer_sdp(jsep: dict[str, Any] | None) -> str:
    if not jsep or "sdp" not in jsep:
        raise MediaError("the media server replied without an SDP")
    return str(jsep["sdp"])


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Janus errors as the media errors of ``media.types`` (the one translation table)."""
    try:
        yield
    except JanusUnavailable as exc:
        raise MediaUnavailable(exc.reason) from exc
    except JanusError as exc:
        raise MediaError(exc.reason) from exc
    except sdp.SdpError as exc:
        raise OfferRefused(str(exc)) from exc


def _typed(on_event: EventHandler, own_id: int | None = None) -> RawEventHandler:
    """A Janus event handler that hands ``on_event`` the typed event, if the raw one means one."""

    def handle(raw: dict[str, Any]) -> None:
        event = _event_of(raw, own_id)
        if event is not None:
            on_event(event)

    return handle


def _event_of(raw: dict[str, Any], own_id: int | None) -> MediaEvent | None:
    kind = raw.get("janus")
    if kind == "webrtcup":
        return Connected()
    if kind == "hangup":
        return HungUp()
    data = raw.get("plugindata", {}).get("data", {})
    # Every leg in an AudioBridge room hears of every talker; only the talker's own leg reports it.
    talk = data.get("audiobridge")
    if kind == "event" and own_id is not None and data.get("id") == own_id and talk in ("talking", "stopped-talking"):
        return Talking(talk == "talking")
    return None


def _rtp_address(data: dict[str, Any]) -> tuple[str, int]:
    rtp = data.get("rtp") or {}
    if "port" not in rtp:
        raise MediaError("the media server did not open an RTP port for the phone leg")
    return str(rtp.get("ip", "127.0.0.1")), int(rtp["port"])


T = TypeVar("T")


async def _record(handle: JanusHandle, base: Path | None) -> None:
    """A leg's or feed's own recording, on or off: both plugins take "record" and "filename"."""
    body: dict[str, Any] = {"request": "configure", "record": base is not None}
    if base is not None:
        body["filename"] = str(base)
    with _mapped_errors():
        await handle.request(body)


async def _checked(leg: JanusAudioLeg, read: Callable[[], T]) -> T:
    """``read()`` the join's reply; a reply without what it must carry closes the leg."""
    try:
        return read()
    except BaseException:
        await leg.close()
        raise


@dataclass
class JanusCallMedia(CallMedia):
    """The Janus rooms of one call. The secret guards moderation requests (mute, kick)."""

    audio_room: int
    video_room: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))


@dataclass
class JanusAudioLeg:
    """A participant in the call's AudioBridge room (their mic into the mix, the mix to them)."""

    handle: JanusHandle
    janus_id: int

    async def set_muted(self, muted: bool) -> None:
        # Only the call host talks to Janus, so a muted participant cannot unmute in the mix.
        with _mapped_errors():
            await self.handle.request({"request": "configure", "muted": muted})

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str:
        with _mapped_errors():
            offer = sdp.audio_offer(offer_sdp, may_send=may_send)
            reply = await self.handle.request({"request": "configure"}, _offer(offer))
            return _answer_sdp(reply.jsep)

    async def record(self, base: Path | None) -> None:
        # janus_audiobridge.c: "record" + "filename" on configure; the plugin appends "-audio.mjr".
        await _record(self.handle, base)

    async def isolate(self, slot: int | None) -> None:
        group = _SHARED_GROUP if slot is None else _SLOT_GROUPS[slot]
        with _mapped_errors():
            await self.handle.request({"request": "configure", "group": group})

    async def close(self) -> None:
        await self.handle.detach()


@dataclass
class JanusForward:
    """An AudioBridge RTP forwarder (``rtp_forward``), stopped by its stream id."""

    control: JanusHandle
    media: JanusCallMedia
    stream_id: int

    async def close(self) -> None:
        with _mapped_errors():
            await self.control.request(
                {
                    "request": "stop_rtp_forward",
                    "room": self.media.audio_room,
                    "secret": self.media.secret,
                    "stream_id": self.stream_id,
                }
            )


@dataclass
class JanusVideoFeed:
    """One published camera or screen in the call's VideoRoom room: one video stream, ``mid``."""

    handle: JanusHandle
    feed_id: int
    mid: str
    # The plane's feed -> mid table, which subscriptions read; a closed feed leaves it.
    mids: dict[int, str] = field(repr=False, default_factory=dict)

    async def record(self, base: Path | None) -> None:
        # janus_videoroom.c: "record" + "filename" on a publisher's configure; the plugin appends
        # "-video-<mindex>.mjr" for each stream.
        await _record(self.handle, base)

    async def request_keyframe(self) -> None:
        # janus_videoroom.c sends a PLI to a publisher when a subscriber's connection comes up, not
        # when an update adds the feed to a running subscription: "keyframe" on configure does.
        with _mapped_errors():
            await self.handle.request({"request": "configure", "keyframe": True})

    async def close(self) -> None:
        self.mids.pop(self.feed_id, None)
        await self.handle.detach()


@dataclass
class JanusAudioFeed:
    """A VideoRoom *remote publisher* with one Opus stream (mindex 0, mid "0"), fed plain RTP on loopback.

    janus_videoroom.c (1.1.2, "remote publishers"): ``add_remote_publisher`` opens a port and
    announces the publisher; packets must carry SSRC 1000 + 10 * mindex (``AUDIO_FEED_SSRC``)
    or they are dropped as "Invalid SSRC".
    Only subscriber handles that take the feed receive it, which is what a prompt to chosen
    participants needs (the AudioBridge cannot play to one participant: pstn-media notes).
    Close it only once no subscription takes it: removing a remote publisher that is still
    subscribed makes Janus send those subscribers an offer of its own (``autoupdate`` does
    not apply to remote publishers), which would hold back their later updates.
    """

    control: JanusHandle
    media: JanusCallMedia
    feed_id: int
    mids: dict[int, str] = field(repr=False, default_factory=dict)

    async def close(self) -> None:
        self.mids.pop(self.feed_id, None)
        with _mapped_errors():
            await self.control.request(
                {
                    "request": "remove_remote_publisher",
                    "room": self.media.video_room,
                    "secret": self.media.secret,
                    "id": self.feed_id,
                }
            )


def _received(streams: list[dict[str, Any]]) -> list[ReceivedStream]:
    return [
        ReceivedStream(mid=str(stream["mid"]), feed_id=int(stream["feed_id"]))
        for stream in streams
        if stream.get("type") in ("audio", "video") and stream.get("active", True) and "feed_id" in stream
    ]


@dataclass
class JanusVideoSubscription:
    """A participant's multistream subscriber handle: the video stream of every feed they receive."""

    handle: JanusHandle
    feeds: set[int] = field(default_factory=set)
    streams: list[ReceivedStream] = field(default_factory=list)

    async def start(self, answer_sdp: str) -> None:
        with _mapped_errors():
            await self.handle.request({"request": "start"}, {"type": "answer", "sdp": answer_sdp})

    async def close(self) -> None:
        await self.handle.detach()


class JanusMediaPlane:
    """Rooms and legs on one connected Janus (implements ``media.types.MediaPlane``)."""

    def __init__(self, connection: JanusConnection, admin_key: str | None, video_bitrate: int) -> None:
        self.connection = connection
        self.admin_key = admin_key
        self.video_bitrate = video_bitrate
        self._audio_control: JanusHandle | None = None
        self._video_control: JanusHandle | None = None
        # feed id -> the mid of its one video stream, which subscriptions take by name
        self._feed_mids: dict[int, str] = {}

    async def _controls(self) -> tuple[JanusHandle, JanusHandle]:
        if self._audio_control is None or self._video_control is None:
            self._audio_control = await self.connection.attach(AUDIOBRIDGE, _ignore)
            self._video_control = await self.connection.attach(VIDEOROOM, _ignore)
        return self._audio_control, self._video_control

    def _admin(self) -> dict[str, str]:
        return {"admin_key": self.admin_key} if self.admin_key else {}

    async def create_call(self, description: str, max_publishers: int) -> JanusCallMedia:
        with _mapped_errors():
            audio, video = await self._controls()
            media = JanusCallMedia(audio_room=_new_id(), video_room=_new_id())
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
                    "groups": [_SHARED_GROUP, *_SLOT_GROUPS],
                    **self._admin(),
                }
            )
            try:
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
            except BaseException:  # the audio room must not outlive a call that never started
                await asyncio.shield(_quietly(self.destroy_call(media)))
                raise
            return media

    async def destroy_call(self, media: CallMedia) -> None:
        assert isinstance(media, JanusCallMedia)
        with _mapped_errors():
            audio, video = await self._controls()
            await audio.request({"request": "destroy", "room": media.audio_room, "secret": media.secret})
            await video.request({"request": "destroy", "room": media.video_room, "secret": media.secret})

    async def play_file(self, media: CallMedia, path: Path, *, loop: bool) -> str:
        """AudioBridge ``play_file`` (an announcement, Ogg Opus): mixed into what every participant hears."""
        assert isinstance(media, JanusCallMedia)
        file_id = uuid.uuid4().hex
        with _mapped_errors():
            audio, _ = await self._controls()
            await audio.request(
                {
                    "request": "play_file",
                    "room": media.audio_room,
                    "secret": media.secret,
                    "file_id": file_id,
                    "group": _SHARED_GROUP,
                    "filename": str(path),
                    "loop": loop,
                }
            )
        return file_id

    async def stop_file(self, media: CallMedia, file_id: str) -> None:
        assert isinstance(media, JanusCallMedia)
        with _mapped_errors():
            audio, _ = await self._controls()
            await audio.request(
                {"request": "stop_file", "room": media.audio_room, "secret": media.secret, "file_id": file_id}
            )

    async def forward_isolated(self, media: CallMedia, slot: int, to: tuple[str, int]) -> JanusForward:
        assert isinstance(media, JanusCallMedia)
        with _mapped_errors():
            audio, _ = await self._controls()
            reply = await audio.request(
                {
                    "request": "rtp_forward",
                    "room": media.audio_room,
                    "secret": media.secret,
                    "group": _SLOT_GROUPS[slot],
                    "codec": "opus",
                    "ptype": OPUS_PAYLOAD_TYPE,
                    "host": to[0],
                    "port": to[1],
                    **self._admin(),
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
        with _mapped_errors():
            audio, _ = await self._controls()
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
        janus_id = _new_id()
        handle = await self.connection.attach(AUDIOBRIDGE, _typed(on_event, janus_id))
        try:
            body = {
                "request": "join",
                "room": media.audio_room,
                "id": janus_id,
                "display": display,
                "muted": muted,
                "group": _SHARED_GROUP,
            }
            return JanusAudioLeg(handle, janus_id), await handle.request({**body, **transport}, jsep)
        except BaseException:
            await handle.detach()
            raise

    async def join_audio(
        self, media: CallMedia, *, display: str, may_send: bool, offer_sdp: str, on_event: EventHandler
    ) -> tuple[JanusAudioLeg, str]:
        with _mapped_errors():
            offer = sdp.audio_offer(offer_sdp, may_send=may_send)
            leg, reply = await self._join_mix(
                media,
                display=display,
                muted=not may_send,
                on_event=on_event,
                transport={"codec": "opus"},
                jsep=_offer(offer),
            )
            return leg, await _checked(leg, lambda: _answer_sdp(reply.jsep))

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
        with _mapped_errors():
            leg, reply = await self._join_mix(
                media, display=display, muted=muted, on_event=on_event, transport={"codec": codec, "rtp": rtp}
            )
            return leg, await _checked(leg, lambda: _rtp_address(reply.data))

    async def open_audio_feed(self, media: CallMedia, *, display: str) -> tuple[JanusAudioFeed, tuple[str, int]]:
        assert isinstance(media, JanusCallMedia)
        feed_id = _new_id()
        # SSRC 1000 + 10 * mindex: mindex 0 is what AUDIO_FEED_SSRC promises the sender.
        stream = {"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"}
        with _mapped_errors():
            _, video = await self._controls()
        feed = JanusAudioFeed(video, media, feed_id, self._feed_mids)
        try:
            with _mapped_errors():
                reply = await video.request(
                    {
                        "request": "add_remote_publisher",
                        "room": media.video_room,
                        "secret": media.secret,
                        "id": feed_id,
                        "display": display,
                        # Loopback only: nothing from the network can speak into a prompt.
                        "iface": "127.0.0.1",
                        "streams": [stream],
                    }
                )
            if "port" not in reply.data:
                raise MediaError("the media server did not open an RTP port for the audio feed")
        except BaseException:
            # Cancelled (or failed) while Janus made it: it may exist all the same; the id is ours.
            await asyncio.shield(_quietly(feed.close()))
            raise
        self._feed_mids[feed_id] = "0"
        return feed, (str(reply.data.get("ip", "127.0.0.1")), int(reply.data["port"]))

    async def publish(
        self, media: CallMedia, *, display: str, offer_sdp: str, on_event: EventHandler
    ) -> tuple[JanusVideoFeed, str]:
        assert isinstance(media, JanusCallMedia)
        feed_id = _new_id()
        with _mapped_errors():
            offer = sdp.video_publish(offer_sdp)
            handle = await self.connection.attach(VIDEOROOM, _typed(on_event))
            try:
                await handle.request(
                    {
                        "request": "join",
                        "ptype": "publisher",
                        "room": media.video_room,
                        "id": feed_id,
                        "display": display,
                    }
                )
                reply = await handle.request({"request": "publish"}, _offer(offer.sdp))
                self._feed_mids[feed_id] = offer.mid
                return JanusVideoFeed(handle, feed_id, offer.mid, self._feed_mids), _answer_sdp(reply.jsep)
            except BaseException:
                await handle.detach()
                raise

    def _streams(self, feeds: set[int]) -> list[dict[str, Any]]:
        return [{"feed": feed, "mid": self._feed_mids[feed]} for feed in sorted(feeds) if feed in self._feed_mids]

    async def subscribe(self, media: CallMedia, feeds: set[int]) -> tuple[JanusVideoSubscription, str]:
        assert isinstance(media, JanusCallMedia)
        with _mapped_errors():
            handle = await self.connection.attach(VIDEOROOM, _ignore)
            try:
                reply = await handle.request(
                    {
                        "request": "join",
                        "ptype": "subscriber",
                        "room": media.video_room,
                        "use_msid": True,
                        # When a feed goes, Janus must not send an offer of its own: the call's
                        # video sync renegotiates (an unanswered offer of Janus's would hold
                        # back every later update of this subscription).
                        "autoupdate": False,
                        "streams": self._streams(feeds),
                    }
                )
            except BaseException:
                await handle.detach()
                raise
            subscription = JanusVideoSubscription(handle, set(feeds), _received(reply.data.get("streams", [])))
            return subscription, _answer_sdp(reply.jsep)

    async def update_subscription(self, subscription: VideoSubscription, feeds: set[int]) -> str | None:
        assert isinstance(subscription, JanusVideoSubscription)
        add, remove = feeds - subscription.feeds, subscription.feeds - feeds
        if not add and not remove:
            return None
        body: dict[str, Any] = {"request": "update"}
        if add:
            body["subscribe"] = self._streams(add)
        if remove:
            body["unsubscribe"] = [{"feed": feed} for feed in sorted(remove)]
        with _mapped_errors():
            reply = await subscription.handle.request(body)
        subscription.feeds = set(feeds)
        if "streams" in reply.data:
            subscription.streams = _received(reply.data["streams"])
        return str(reply.jsep["sdp"]) if reply.jsep else None


async def _quietly(cleanup: Awaitable[None]) -> None:
    """A best-effort undo on a path that is already failing: its own failure is logged, not raised."""
    try:
        await cleanup
    except Exception as exc:
        log.warning("cleaning up in the media server failed: %s", exc)
