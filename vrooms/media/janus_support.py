"""What the AudioBridge and VideoRoom halves of the Janus media plane share: plugin names, the
call's rooms, ids, SDP envelopes, Janus errors mapped to ``MediaError``, plugin events
translated into the typed ``MediaEvent`` values, and the control handles both plugins need.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrooms.media import sdp
from vrooms.media.janus import EventHandler as RawEventHandler
from vrooms.media.janus import JanusConnection, JanusError, JanusHandle, JanusUnavailable
from vrooms.media.types import (
    ISOLATED_SLOTS,
    CallMedia,
    Connected,
    EventHandler,
    HungUp,
    MediaError,
    MediaEvent,
    MediaUnavailable,
    OfferRefused,
    Talking,
)

log = logging.getLogger("vrooms.media")

AUDIOBRIDGE = "janus.plugin.audiobridge"
VIDEOROOM = "janus.plugin.videoroom"
# AudioBridge forwarding groups (janus_audiobridge.c, "groups"; 5 at most per room): every leg is in
# the shared one, and one at a time may be alone in a slot's group, whose forwarder then carries
# that participant alone (unmixed media streaming). Groups do not change the mix anyone hears.
SHARED_GROUP = "shared"
SLOT_GROUPS = tuple(f"slot-{n}" for n in range(ISOLATED_SLOTS))


def new_id() -> int:
    # Janus ids are JSON numbers; stay inside the 53-bit range every JSON parser keeps exact.
    return secrets.randbelow(2**52) + 1


def ignore_event(_event: dict[str, Any]) -> None:
    """Control handles only make synchronous requests; their events carry nothing for us."""


def offer_jsep(sdp: str) -> dict[str, str]:
    return {"type": "offer", "sdp": sdp}


def answer_sdp_of(jsep: dict[str, Any] | None) -> str:
    if not jsep or "sdp" not in jsep:
        raise MediaError("the media server replied without an SDP")
    return str(jsep["sdp"])


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Janus errors as the media errors of ``media.types`` (the one translation table)."""
    try:
        yield
    except JanusUnavailable as exc:
        raise MediaUnavailable(exc.reason) from exc
    except JanusError as exc:
        raise MediaError(exc.reason) from exc
    except sdp.SdpError as exc:
        raise OfferRefused(str(exc)) from exc


def typed(on_event: EventHandler, own_id: int | None = None) -> RawEventHandler:
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


def rtp_address(data: dict[str, Any]) -> tuple[str, int]:
    rtp = data.get("rtp") or {}
    if "port" not in rtp:
        raise MediaError("the media server did not open an RTP port for the phone leg")
    return str(rtp.get("ip", "127.0.0.1")), int(rtp["port"])


async def set_recording(handle: JanusHandle, base: Path | None) -> None:
    """A leg's or feed's own recording, on or off: both plugins take "record" and "filename"."""
    body: dict[str, Any] = {"request": "configure", "record": base is not None}
    if base is not None:
        body["filename"] = str(base)
    with mapped_errors():
        await handle.request(body)


@dataclass
class JanusCallMedia(CallMedia):
    """The Janus rooms of one call. The secret guards moderation requests (mute, kick)."""

    audio_room: int
    video_room: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))


class JanusControls:
    """The connection and the two control handles (room-level requests) of one Janus."""

    def __init__(self, connection: JanusConnection, admin_key: str | None, video_bitrate: int) -> None:
        self.connection = connection
        self.admin_key = admin_key
        self.video_bitrate = video_bitrate
        self._audio_control: JanusHandle | None = None
        self._video_control: JanusHandle | None = None
        # feed id -> the mid of its one video stream, which subscriptions take by name
        self.feed_mids: dict[int, str] = {}

    async def controls(self) -> tuple[JanusHandle, JanusHandle]:
        if self._audio_control is None or self._video_control is None:
            self._audio_control = await self.connection.attach(AUDIOBRIDGE, ignore_event)
            self._video_control = await self.connection.attach(VIDEOROOM, ignore_event)
        return self._audio_control, self._video_control

    def admin(self) -> dict[str, str]:
        return {"admin_key": self.admin_key} if self.admin_key else {}


async def quietly(cleanup: Awaitable[None]) -> None:
    """A best-effort undo on a path that is already failing: its own failure is logged, not raised."""
    try:
        await cleanup
    except Exception as exc:
        log.warning("cleaning up in the media server failed: %s", exc)
