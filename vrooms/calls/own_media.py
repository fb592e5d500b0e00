"""A participant's own media: mute and hold (the mixer), audio renegotiation, cameras and screens.

Media state is never written from a decision taken before an await: the participant's state
changes first, then ``settle_audio`` brings the mixer to it, re-reading it after every request
until they agree, so a demotion that lands during an unmute ends with the mixer muted.
A camera or screen is published only while the role allows it, checked again once the media
plane has answered (``ensure``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

from vrooms.auth.roles import Capability
from vrooms.calls.call import SOURCE_CAPABILITY, Participant
from vrooms.calls.models import MediaSource, ParticipantState
from vrooms.calls.rules import ensure
from vrooms.calls.video import VideoSync
from vrooms.media.types import Connected, MediaError, MediaEvent, MediaPlane


class OwnMedia:
    def __init__(self, video: VideoSync, plane: Callable[[], MediaPlane]) -> None:
        self._video = video
        self._plane = plane

    async def settle_audio(self, participant: Participant) -> None:
        """Bring the mixer to ``participant.mix_muted``, re-reading it after every await until they agree.

        Whatever changed while a request was on its way (a demotion during an unmute,
        a hold during a mute), the last request sent is the current state.
        """
        async with participant.audio_lock:
            while participant.in_call and participant.audio is not None:
                wanted = participant.mix_muted
                if wanted == participant.mix_muted_applied:
                    return
                participant.mix_muted_applied = None
                await participant.audio.set_muted(wanted)
                participant.mix_muted_applied = wanted

    async def set_muted(self, participant: Participant, muted: bool) -> None:
        call = ensure(participant, None if muted else Capability.SEND_AUDIO)
        participant.muted = muted
        await self.settle_audio(participant)
        call.updated(participant)
        if not muted:
            ensure(participant, Capability.SEND_AUDIO)  # demoted meanwhile: the mixer already has it muted

    async def set_on_hold(self, participant: Participant, on_hold: bool) -> None:
        """Hold takes the participant out of the mix and shows them OnHold; resume puts them back.

        Janus 1.1's AudioBridge cannot pause the mix it sends, so the client stops playing it.
        """
        call = ensure(participant)
        if on_hold == (participant.state == ParticipantState.ON_HOLD):
            return
        participant.state = ParticipantState.ON_HOLD if on_hold else ParticipantState.CONNECTED
        await self.settle_audio(participant)
        call.updated(participant)

    async def renegotiate_audio(self, participant: Participant, sdp: str) -> str:
        ensure(participant)
        assert participant.audio is not None
        answer = await participant.audio.renegotiate(sdp, may_send=participant.can(Capability.SEND_AUDIO))
        await self.settle_audio(participant)
        ensure(participant)
        return answer

    async def publish(self, participant: Participant, source: MediaSource, sdp: str) -> str:
        capability = SOURCE_CAPABILITY[source]
        call = ensure(participant, capability)
        async with participant.video_lock:
            ensure(participant, capability)
            await self._unpublish(participant, source)
            feed, answer = await self._plane().publish(
                call.media,
                display=participant.display_name,
                offer_sdp=sdp,
                on_event=partial(self._on_feed_event, participant, source),
            )
            if not participant.may_publish(source):  # left, or lost the right, while the media plane answered
                with contextlib.suppress(MediaError):
                    await feed.close()
                ensure(participant, capability)
            participant.feeds[source] = feed
        call.updated(participant)
        return answer

    def _on_feed_event(self, participant: Participant, source: MediaSource, event: MediaEvent) -> None:
        if isinstance(event, Connected) and source in participant.feeds and participant.in_call:
            participant.ready.add(source)
            self._video.sync_all(participant.call)
            if participant.call.recorder is not None:
                participant.call.recorder.feed_added(participant, source)

    async def unpublish(self, participant: Participant, source: MediaSource) -> None:
        async with participant.video_lock:
            await self._unpublish(participant, source)

    async def _unpublish(self, participant: Participant, source: MediaSource) -> None:
        feed = participant.feeds.pop(source, None)
        participant.ready.discard(source)
        if feed is None:
            return
        with contextlib.suppress(MediaError):
            await feed.close()
        if participant.in_call:
            participant.call.updated(participant)
            self._video.sync_all(participant.call)
