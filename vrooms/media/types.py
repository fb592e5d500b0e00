"""What a call needs from a media plane, in call terms: the seam between ``calls/`` and Janus.

``calls/`` sees only these types: legs it can mute, renegotiate and close, typed events
and one error family. The Janus adapter (``media/plane.py``) maps plugin replies,
events and errors to them; tests of the call rules use an in-memory plane that
implements the same protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# The payload type of Opus in plain RTP to and from the media plane (media streams, audio feeds).
OPUS_PAYLOAD_TYPE = 111
# The SSRC an audio feed's RTP must carry: the media plane tells streams apart by it.
AUDIO_FEED_SSRC = 1000
# How many participants' audio a call can have forwarded apart from the mix at once.
ISOLATED_SLOTS = 4


class MediaError(Exception):
    """The media plane refused or failed a request; ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaUnavailable(MediaError):
    """The media server is gone (died, restarting or never reached)."""


class OfferRefused(MediaError):
    """The client's SDP offer is malformed or has a shape its request does not allow."""


@dataclass(frozen=True)
class Connected:
    """The leg's WebRTC session is up (ICE and DTLS done)."""


@dataclass(frozen=True)
class HungUp:
    """The leg's WebRTC session ended without a leave (ICE or DTLS failed, or the client closed it)."""


@dataclass(frozen=True)
class Talking:
    """The leg's audio level crossed the talking threshold (``talking``) or fell below it."""

    talking: bool


MediaEvent = Connected | HungUp | Talking
EventHandler = Callable[[MediaEvent], None]


@dataclass(frozen=True)
class ReceivedStream:
    """One stream of a subscription: the client's ``mid`` and the feed it carries."""

    mid: str
    feed_id: int


class CallMedia(Protocol):
    """The media plane's rooms for one call (opaque to the call)."""


class AudioLeg(Protocol):
    """A participant in the call's mix: their microphone into it, the mix back to them."""

    async def set_muted(self, muted: bool) -> None: ...

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str: ...

    async def record(self, base: Path | None) -> None:
        """Write what this participant sends to ``<base>-audio.mjr`` (its own file), or stop (None)."""
        ...

    async def isolate(self, slot: int | None) -> None:
        """Put this participant's audio alone on ``slot``'s forward (``forward_isolated``), or take it
        off (None). What they hear and what the mix carries do not change."""
        ...

    async def close(self) -> None: ...


class Forward(Protocol):
    """RTP the media plane sends somewhere until closed."""

    async def close(self) -> None: ...


class VideoFeed(Protocol):
    """One published camera or screen: exactly one video stream."""

    feed_id: int

    async def record(self, base: Path | None) -> None:
        """Write the stream to ``<base>-video-<n>.mjr`` (its own file), or stop (None)."""
        ...

    async def request_keyframe(self) -> None:
        """Ask the sender for a full picture: a subscription that takes the feed mid-stream can
        decode nothing before one."""
        ...

    async def close(self) -> None: ...


class AudioFeed(Protocol):
    """A stream of audio outside the mix: only the participants whose subscription takes it hear it
    (a prompt to chosen participants)."""

    feed_id: int

    async def close(self) -> None: ...


class VideoSubscription(Protocol):
    """Everything one participant receives besides the mix (cameras, screens, audio feeds),
    renegotiated as feeds come and go."""

    streams: list[ReceivedStream]

    async def start(self, answer_sdp: str) -> None: ...

    async def pause(self, mids: set[str]) -> set[str]:
        """Stop sending these streams (the receiver does not show them), send the others again,
        without renegotiating; the mids sent again (they need a keyframe)."""
        ...

    async def close(self) -> None: ...


class MediaPlane(Protocol):
    async def create_call(self, description: str, max_publishers: int) -> CallMedia: ...

    async def destroy_call(self, media: CallMedia) -> None: ...

    async def join_audio(
        self, media: CallMedia, *, display: str, may_send: bool, offer_sdp: str, on_event: EventHandler
    ) -> tuple[AudioLeg, str]:
        """Join the mix; without ``may_send`` the offer is made receive-only and the leg muted."""
        ...

    async def join_rtp(
        self,
        media: CallMedia,
        *,
        display: str,
        send_to: tuple[str, int],
        muted: bool,
        on_event: EventHandler,
        codec: str = "pcmu",
    ) -> tuple[AudioLeg, tuple[str, int]]:
        """Join the mix as a plain-RTP leg (``pcmu``, or ``opus`` with payload type 111) sending the
        mix to ``send_to``; returns where it listens.

        Telephone legs come in this way, relayed by rtpengine (G.711); so do media streams (Opus).
        """
        ...

    async def play_file(self, media: CallMedia, path: Path, *, loop: bool) -> str:
        """Play an Ogg Opus file into the mix, heard by everyone in the call; returns its id."""
        ...

    async def stop_file(self, media: CallMedia, file_id: str) -> None:
        """Stop a file ``play_file`` started (nothing happens if it has ended)."""
        ...

    async def forward_isolated(self, media: CallMedia, slot: int, to: tuple[str, int]) -> Forward:
        """Send the audio of the participant isolated on ``slot`` (0 to ``ISOLATED_SLOTS`` - 1; nothing
        while nobody is) to ``to`` as Opus RTP, payload type ``OPUS_PAYLOAD_TYPE``."""
        ...

    async def record_mix(self, media: CallMedia, path: Path | None) -> None:
        """Write the call's whole mix (everyone, and files played) to ``path`` as WAV, or stop (None)."""
        ...

    async def open_audio_feed(self, media: CallMedia, *, display: str) -> tuple[AudioFeed, tuple[str, int]]:
        """A feed of one Opus stream, sent to it as plain RTP (payload type 111, SSRC ``AUDIO_FEED_SSRC``)
        at the returned loopback address; it reaches the subscriptions that take it, never the mix."""
        ...

    async def publish(
        self, media: CallMedia, *, display: str, offer_sdp: str, on_event: EventHandler
    ) -> tuple[VideoFeed, str]:
        """Publish one video stream; refuses (``OfferRefused``) any offer with audio or several streams."""
        ...

    async def subscribe(self, media: CallMedia, feeds: set[int]) -> tuple[VideoSubscription, str]:
        """A subscription to the one stream of each feed (video, or an audio feed's audio); returns the
        offer for the client."""
        ...

    async def update_subscription(self, subscription: VideoSubscription, feeds: set[int]) -> str | None:
        """Change what a subscription receives; the new offer, or None if nothing changed."""
        ...
