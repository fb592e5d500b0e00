"""Cameras, screens and targeted prompts in a Janus VideoRoom room.

Each camera or screen is a publisher feed of one video stream; each participant has one
multistream subscriber handle that takes exactly that stream of each feed (by ``mid``),
never anything else a publisher might carry. Audio for chosen participants only (a
targeted prompt) is a *remote publisher* of one audio stream, taken by their handles alone.
Plugin API: the comment block at the top of janus_videoroom.c (janus-gateway 1.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrooms.media import sdp
from vrooms.media.janus import JanusHandle
from vrooms.media.janus_support import (
    VIDEOROOM,
    JanusCallMedia,
    JanusControls,
    answer_sdp_of,
    ignore_event,
    mapped_errors,
    new_id,
    offer_jsep,
    quietly,
    set_recording,
    typed,
)
from vrooms.media.types import CallMedia, EventHandler, MediaError, ReceivedStream, VideoSubscription
from vrooms.supervision import to_the_end


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
        await set_recording(self.handle, base)

    async def request_keyframe(self) -> None:
        # janus_videoroom.c sends a PLI to a publisher when a subscriber's connection comes up, not
        # when an update adds the feed to a running subscription: "keyframe" on configure does.
        with mapped_errors():
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
        with mapped_errors():
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

    paused: set[str] = field(default_factory=set)

    async def start(self, answer_sdp: str) -> None:
        with mapped_errors():
            await self.handle.request({"request": "start"}, {"type": "answer", "sdp": answer_sdp})

    async def pause(self, mids: set[str]) -> set[str]:
        current = {stream.mid for stream in self.streams}
        mids &= current
        self.paused &= current  # a stream gone is neither paused nor resumed
        changes = [{"mid": mid, "send": False} for mid in sorted(mids - self.paused)]
        resumed = self.paused - mids
        changes += [{"mid": mid, "send": True} for mid in sorted(resumed)]
        if changes:
            with mapped_errors():
                await self.handle.request({"request": "configure", "streams": changes})
            self.paused = set(mids)
        return resumed

    async def close(self) -> None:
        await self.handle.detach()


class VideoRoomPlane(JanusControls):
    """The VideoRoom half of ``JanusMediaPlane``."""

    async def open_audio_feed(self, media: CallMedia, *, display: str) -> tuple[JanusAudioFeed, tuple[str, int]]:
        assert isinstance(media, JanusCallMedia)
        feed_id = new_id()
        # SSRC 1000 + 10 * mindex: mindex 0 is what AUDIO_FEED_SSRC promises the sender.
        stream = {"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"}
        with mapped_errors():
            _, video = await self.controls()
        feed = JanusAudioFeed(video, media, feed_id, self.feed_mids)
        try:
            with mapped_errors():
                # Run to the end even if cancelled: Janus may take requests in parallel, so a
                # removal sent while the add is in flight can come first and leave the feed for good.
                reply = await to_the_end(
                    video.request(
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
                )
            if "port" not in reply.data:
                raise MediaError("the media server did not open an RTP port for the audio feed")
        except BaseException:
            # Cancelled (or failed) while Janus made it: it may exist all the same; the id is ours.
            await to_the_end(quietly(feed.close()))
            raise
        self.feed_mids[feed_id] = "0"
        return feed, (str(reply.data.get("ip", "127.0.0.1")), int(reply.data["port"]))

    async def publish(
        self, media: CallMedia, *, display: str, offer_sdp: str, on_event: EventHandler
    ) -> tuple[JanusVideoFeed, str]:
        assert isinstance(media, JanusCallMedia)
        feed_id = new_id()
        with mapped_errors():
            offer = sdp.video_publish(offer_sdp)
            handle = await self.connection.attach(VIDEOROOM, typed(on_event))
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
                reply = await handle.request({"request": "publish"}, offer_jsep(offer.sdp))
                self.feed_mids[feed_id] = offer.mid
                return JanusVideoFeed(handle, feed_id, offer.mid, self.feed_mids), answer_sdp_of(reply.jsep)
            except BaseException:
                await to_the_end(handle.detach())  # a second cancel must not leave the handle
                raise

    def _streams(self, feeds: set[int]) -> list[dict[str, Any]]:
        return [{"feed": feed, "mid": self.feed_mids[feed]} for feed in sorted(feeds) if feed in self.feed_mids]

    async def subscribe(self, media: CallMedia, feeds: set[int]) -> tuple[JanusVideoSubscription, str]:
        assert isinstance(media, JanusCallMedia)
        with mapped_errors():
            handle = await self.connection.attach(VIDEOROOM, ignore_event)
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
                await to_the_end(handle.detach())  # a second cancel must not leave the handle
                raise
            subscription = JanusVideoSubscription(handle, set(feeds), _received(reply.data.get("streams", [])))
            return subscription, answer_sdp_of(reply.jsep)

    async def update_subscription(self, subscription: VideoSubscription, feeds: set[int]) -> str | None:
        assert isinstance(subscription, JanusVideoSubscription)
        add, remove = feeds - subscription.feeds, subscription.feeds - feeds
        # A closed feed (gone from ``feed_mids``) has left the room, and Janus took its stream out of
        # every subscription: unsubscribing it again fails the whole update ("No such feed"), and
        # every later one with it, so the participant would never receive a new feed again.
        remove = {feed for feed in remove if feed in self.feed_mids}
        if not add and not remove:
            subscription.feeds = set(feeds)
            return None
        body: dict[str, Any] = {"request": "update"}
        if add:
            body["subscribe"] = self._streams(add)
        if remove:
            body["unsubscribe"] = [{"feed": feed} for feed in sorted(remove)]
        with mapped_errors():
            reply = await subscription.handle.request(body)
        subscription.feeds = set(feeds)
        if "streams" in reply.data:
            subscription.streams = _received(reply.data["streams"])
        return str(reply.jsep["sdp"]) if reply.jsep else None
