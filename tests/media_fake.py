"""An in-memory media plane for unit tests of the call rules (a fake: it forwards no media).

It implements ``vrooms.media.types.MediaPlane``, records what it was asked, and can
hold any operation at its await (``pause``) so a test can land a role change, a
removal or a revocation exactly there. The proof that media obeys the rules is the
real-Janus tests; this one makes the races reproducible in milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from vrooms.media import sdp
from vrooms.media.types import CallMedia, EventHandler, OfferRefused, ReceivedStream

_ids = itertools.count(1)


def _streams(feeds: set[int]) -> list[ReceivedStream]:
    return [ReceivedStream(str(mid), feed) for mid, feed in enumerate(sorted(feeds))]


class Pause:
    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._go = asyncio.Event()

    def release(self) -> None:
        self._go.set()

    async def hold(self) -> None:
        self.reached.set()
        await self._go.wait()


@dataclass
class FakeCallMedia(CallMedia):
    number: int
    destroyed: bool = False


@dataclass
class FakeLeg:
    plane: FakePlane
    kind: str
    feed_id: int = field(default_factory=lambda: next(_ids))
    muted: bool = False
    closed: bool = False
    on_event: EventHandler | None = None

    async def set_muted(self, muted: bool) -> None:
        await self.plane.step("set_muted")
        self.muted = muted

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str:
        await self.plane.step("renegotiate")
        return sdp.audio_offer(offer_sdp, may_send=may_send)

    async def record(self, base: Path | None) -> None:
        await self.plane.step("record")

    async def isolate(self, slot: int | None) -> None:
        await self.plane.step("isolate")

    async def request_keyframe(self) -> None:
        await self.plane.step("request_keyframe")

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeSubscription:
    plane: FakePlane
    feeds: set[int]
    streams: list[ReceivedStream] = field(default_factory=list)
    closed: bool = False
    paused: set[str] = field(default_factory=set)

    async def start(self, answer_sdp: str) -> None:
        await self.plane.step("start")

    async def pause(self, mids: set[str]) -> set[str]:
        resumed, self.paused = self.paused - mids, set(mids)
        return resumed

    async def close(self) -> None:
        self.closed = True


class FakePlane:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.legs: list[FakeLeg] = []
        self._pauses: dict[str, Pause] = {}

    def pause(self, operation: str) -> Pause:
        """The next ``operation`` waits at its await until ``release()``."""
        self._pauses[operation] = pause = Pause()
        return pause

    async def step(self, operation: str) -> None:
        self.calls.append(operation)
        pause = self._pauses.pop(operation, None)
        if pause is not None:
            await pause.hold()
        await asyncio.sleep(0)  # every media request is an await, as with Janus

    def _checked(self, check: object) -> None:
        try:
            check()  # type: ignore[operator]
        except sdp.SdpError as exc:
            raise OfferRefused(str(exc)) from exc

    async def create_call(self, description: str, max_publishers: int) -> FakeCallMedia:
        await self.step("create_call")
        return FakeCallMedia(next(_ids))

    async def destroy_call(self, media: CallMedia) -> None:
        assert isinstance(media, FakeCallMedia)
        media.destroyed = True

    async def join_audio(
        self, media: CallMedia, *, display: str, may_send: bool, offer_sdp: str, on_event: EventHandler
    ) -> tuple[FakeLeg, str]:
        self._checked(lambda: sdp.audio_offer(offer_sdp, may_send=may_send))
        await self.step("join_audio")
        leg = FakeLeg(self, "audio", muted=not may_send, on_event=on_event)
        self.legs.append(leg)
        return leg, "v=0\r\n"

    async def join_rtp(
        self,
        media: CallMedia,
        *,
        display: str,
        send_to: tuple[str, int],
        muted: bool,
        on_event: EventHandler,
        codec: str = "pcmu",
    ) -> tuple[FakeLeg, tuple[str, int]]:
        await self.step("join_rtp")
        leg = FakeLeg(self, "audio", muted=muted, on_event=on_event)
        self.legs.append(leg)
        return leg, ("127.0.0.1", 9)

    async def play_file(self, media: CallMedia, path: Path, *, loop: bool) -> str:
        await self.step("play_file")
        return path.name

    async def stop_file(self, media: CallMedia, file_id: str) -> None:
        await self.step("stop_file")

    async def forward_isolated(self, media: CallMedia, slot: int, to: tuple[str, int]) -> FakeLeg:
        await self.step("forward_isolated")
        return FakeLeg(self, "forward")

    async def record_mix(self, media: CallMedia, path: Path | None) -> None:
        await self.step("record_mix")

    async def open_audio_feed(self, media: CallMedia, *, display: str) -> tuple[FakeLeg, tuple[str, int]]:
        await self.step("open_audio_feed")
        leg = FakeLeg(self, "audio feed")
        self.legs.append(leg)
        return leg, ("127.0.0.1", 9)

    async def publish(
        self, media: CallMedia, *, display: str, offer_sdp: str, on_event: EventHandler
    ) -> tuple[FakeLeg, str]:
        self._checked(lambda: sdp.video_publish(offer_sdp))
        await self.step("publish")
        leg = FakeLeg(self, "video", on_event=on_event)
        self.legs.append(leg)
        return leg, "v=0\r\n"

    async def subscribe(self, media: CallMedia, feeds: set[int]) -> tuple[FakeSubscription, str]:
        await self.step("subscribe")
        return FakeSubscription(self, set(feeds), _streams(feeds)), "v=0"

    async def update_subscription(self, subscription: object, feeds: set[int]) -> str | None:
        assert isinstance(subscription, FakeSubscription)
        await self.step("update_subscription")
        if feeds == subscription.feeds:
            return None
        subscription.feeds = set(feeds)
        subscription.streams = _streams(feeds)
        return "v=0"
