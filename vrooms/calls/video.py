"""Receiving video: one subscription per participant, kept in step with the call's feeds.

Each participant receives the video stream of every ready feed but their own, paused but the
ones their screen shows when their client says which (``visibleVideo``: a page of the grid; a
pause needs no renegotiation), and the audio feeds meant for them (``Call.audio_feeds``:
prompts to chosen participants). A change (a camera on or off, someone leaving) renegotiates:
the media plane offers, the client answers (``videoOffer`` / ``videoAnswer``), one
renegotiation at a time per participant; changes that arrive meanwhile are folded into the
next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from vrooms.calls import protocol
from vrooms.calls.call import Call, Participant
from vrooms.calls.models import CallRefused, MediaSource, Refusal
from vrooms.media.types import MediaError, MediaPlane, ReceivedStream

log = logging.getLogger("vrooms.calls")

_ANSWER_TIMEOUT_SECONDS = 10.0
# A failed round is tried again this many times in all, after 0.1 s, 0.2 s...
_ROUND_TRIES = 3
_RETRY_SECONDS = 0.1
# How long a feed's removal waits for its audience to stop taking it (many rounds may queue).
FEED_RELEASE_SECONDS = 30.0


class VideoSync:
    def __init__(self, plane: Callable[[], MediaPlane | None]) -> None:
        self._plane = plane

    def sync_all(self, call: Call) -> None:
        for participant in call.participants.values():
            self.sync(participant)

    def sync(self, participant: Participant) -> None:
        """Bring the participant's subscription to every ready feed but their own (phones get none)."""
        if participant.phone_number is not None:
            return
        if participant.sync_task is not None and not participant.sync_task.done():
            participant.sync_again = True
            return
        participant.sync_task = asyncio.get_running_loop().create_task(self._loop(participant))

    def stop(self, participant: Participant) -> bool:
        """The participant left: no more renegotiation. Whether they had published video."""
        if participant.sync_task is not None:
            participant.sync_task.cancel()
        if participant.pending_answer is not None and not participant.pending_answer.done():
            participant.pending_answer.cancel()
        return bool(participant.feeds)

    async def settle(
        self, participants: list[Participant], *, without: int | None = None, timeout: float = _ANSWER_TIMEOUT_SECONDS
    ) -> None:
        """Renegotiate now and wait (at most ``timeout``) until these participants' subscriptions match
        the call; with ``without``, until none of them takes that feed any more, however many rounds
        other changes add meanwhile (a feed removed while subscribed makes Janus offer on its own,
        and an offer nobody answers holds back every later update of that subscription)."""
        deadline = asyncio.get_running_loop().time() + timeout
        for participant in participants:
            self.sync(participant)
        while True:
            tasks = [p.sync_task for p in participants if p.sync_task is not None and not p.sync_task.done()]
            remaining = deadline - asyncio.get_running_loop().time()
            if not tasks or remaining <= 0:
                return
            await asyncio.wait(tasks, timeout=remaining)
            if without is None or not any(_takes(p, without) for p in participants):
                return
            for participant in participants:
                self.sync(participant)

    @staticmethod
    def answer(participant: Participant, sdp: str) -> None:
        if participant.pending_answer is None or participant.pending_answer.done():
            raise CallRefused(Refusal.BAD_MESSAGE, "No video offer is waiting for an answer.")
        participant.pending_answer.set_result(sdp)

    async def _loop(self, participant: Participant) -> None:
        participant.sync_again = True
        failures = 0
        while participant.sync_again:
            participant.sync_again = False
            plane = self._plane()
            if not participant.in_call or plane is None:
                return
            try:
                await self._once(participant.call, participant, plane)
                failures = 0
            except (MediaError, TimeoutError) as exc:
                failures += 1
                log.warning("video renegotiation for %s failed (%d): %s", participant.id, failures, exc)
                if failures < _ROUND_TRIES:  # a feed that came or went mid-round: the next round sees it
                    participant.sync_again = True
                    await asyncio.sleep(_RETRY_SECONDS * failures)

    @staticmethod
    async def _once(call: Call, participant: Participant, plane: MediaPlane) -> None:
        owners = call.feed_owners()
        wanted = {feed for feed, (owner, _) in owners.items() if owner is not participant}
        wanted |= {feed for feed, audience in call.audio_feeds.items() if participant.id in audience}
        had = {s.feed_id for s in participant.subscription.streams} if participant.subscription else set()
        if participant.subscription is None:
            if not wanted:
                return
            participant.subscription, offer = await plane.subscribe(call.media, wanted)
        else:
            maybe_offer = await plane.update_subscription(participant.subscription, wanted)
            if maybe_offer is None:
                await _show(participant, owners)
                return
            offer = maybe_offer
        streams = [
            described
            for stream in participant.subscription.streams
            if (described := _described(stream, owners, call.audio_feeds)) is not None
        ]
        participant.pending_answer = asyncio.get_running_loop().create_future()
        participant.peer.send(protocol.video_offer(offer, streams))
        answer = await asyncio.wait_for(participant.pending_answer, _ANSWER_TIMEOUT_SECONDS)
        await participant.subscription.start(answer)
        await _show(participant, owners)
        await _request_keyframes({s.feed_id for s in participant.subscription.streams} - had, owners)


async def _show(participant: Participant, owners: dict[int, tuple[Participant, MediaSource]]) -> None:
    """Only the videos the participant's screen shows are sent to it (``visibleVideo``); the others
    stay in its subscription, paused, so a page of the grid changes without renegotiating."""
    subscription = participant.subscription
    if subscription is None:
        return
    shown = participant.visible_video
    hidden = {
        stream.mid
        for stream in subscription.streams
        if stream.feed_id in owners and shown is not None and _owner_source(owners[stream.feed_id]) not in shown
    }
    resumed = await subscription.pause(hidden)
    await _request_keyframes({s.feed_id for s in subscription.streams if s.mid in resumed}, owners)


def _owner_source(owner: tuple[Participant, MediaSource]) -> tuple[str, MediaSource]:
    return owner[0].id, owner[1]


def _takes(participant: Participant, feed_id: int) -> bool:
    subscription = participant.subscription
    return participant.in_call and subscription is not None and feed_id in {s.feed_id for s in subscription.streams}


async def _request_keyframes(feeds: set[int], owners: dict[int, tuple[Participant, MediaSource]]) -> None:
    """The feeds this subscription just took: their senders send a full picture now."""
    for feed_id in feeds & owners.keys():
        owner, source = owners[feed_id]
        feed = owner.feeds.get(source)
        if feed is not None:
            with contextlib.suppress(MediaError):
                await feed.request_keyframe()


def _described(
    stream: ReceivedStream, owners: dict[int, tuple[Participant, MediaSource]], audio_feeds: dict[int, Any]
) -> dict[str, Any] | None:
    """A stream as the client sees it: whose camera or screen, or audio for this participant alone."""
    if stream.feed_id in audio_feeds:
        return {"mid": stream.mid, "kind": "audio", "participantId": None, "source": "prompt"}
    if stream.feed_id not in owners:
        return None
    owner, source = owners[stream.feed_id]
    return {"mid": stream.mid, "kind": "video", "participantId": owner.id, "source": str(source)}
