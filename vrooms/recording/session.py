"""One recording of a running call: segments of Janus recording, started and ended on command.

The session is the call's ``Recorder``: the call service tells it of every leg that joins
the mix (so an unmixed recording records late joiners and phones too) and of the call's
end. A pause ends the segment (Janus closes its files), a resume starts the next; the
documents are made from the segments once the recording stops (``recording.service``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vrooms.api.times import now_micros
from vrooms.calls.call import Call, Participant
from vrooms.calls.models import MediaSource
from vrooms.media.types import MediaError, MediaPlane
from vrooms.recording.schemas import Channel, Content
from vrooms.recording.store import Phase, RecordingState, Segment
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.recording")


def mix_file(folder: Path, segment: int) -> Path:
    return folder / f"mix-{segment:03d}.wav"


def leg_base(folder: Path, segment: int, participant_id: str) -> Path:
    """What Janus is told to record a leg to; it adds ``-audio.mjr`` (``leg_file``)."""
    return folder / f"{segment:03d}-{participant_id}"


def leg_file(folder: Path, segment: int, participant_id: str) -> Path:
    return Path(f"{leg_base(folder, segment, participant_id)}-audio.mjr")


def feed_key(participant_id: str, source: MediaSource) -> str:
    return f"{participant_id}-{source}"


def feed_base(folder: Path, segment: int, key: str, feed_id: int) -> Path:
    """A feed's file base: a camera turned off and on is a new feed, so a file of its own."""
    return folder / f"{segment:03d}-{key}-{feed_id}"


def feed_files(folder: Path, segment: int, key: str) -> list[Path]:
    """What Janus wrote of a participant's camera (or screen) in a segment; it adds
    ``-video-<mindex>.mjr`` to each base."""
    return sorted(folder.glob(f"{segment:03d}-{key}-*-video-*.mjr"))


@dataclass(eq=False)
class RecordingSession:
    state: RecordingState
    call: Call
    folder: Path
    plane: Callable[[], MediaPlane | None]
    # Called when the call ends under the recording (it stops it).
    on_call_ended: Callable[[RecordingSession], None]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: TaskSet = field(default_factory=lambda: TaskSet(log))

    @property
    def unmixed(self) -> bool:
        return self.state.channel == Channel.UNMIXED

    @property
    def with_video(self) -> bool:
        return self.state.content == Content.AUDIO_VIDEO

    # -- Recorder (calls.call) ------------------------------------------------------------

    def leg_added(self, participant: Participant) -> None:
        if self.state.active and self.unmixed:
            self._tasks.spawn(self._record_leg(participant, self.state.segments[-1]))

    def feed_added(self, participant: Participant, source: MediaSource) -> None:
        if self.state.active and self.with_video:
            self._tasks.spawn(self._record_feed(participant, source, self.state.segments[-1]))

    def call_ended(self) -> None:
        self.on_call_ended(self)

    # -- segments ---------------------------------------------------------------------------

    async def begin_segment(self) -> None:
        """Start recording (again): the mix, or every leg now in the mix (later ones: ``leg_added``)."""
        segment = Segment(len(self.state.segments), now_micros())
        self.state.segments.append(segment)
        self.state.phase = Phase.ACTIVE
        plane = self._plane()
        if self.unmixed:
            legs = [p for p in self.call.participants.values() if p.audio is not None]
            await asyncio.gather(*(self._record_leg(p, segment) for p in legs))
            return
        await plane.record_mix(self.call.media, mix_file(self.folder, segment.index))
        if self.with_video:
            live = [(p, source) for p in self.call.participants.values() for source in p.ready]
            await asyncio.gather(*(self._record_feed(p, source, segment) for p, source in live))

    async def end_segment(self, phase: str) -> None:
        """Stop the open segment's recording; Janus closes its files (``.part`` until then)."""
        segment = self.state.segments[-1] if self.state.segments else None
        if segment is not None and segment.ended_at is None:
            segment.ended_at = now_micros()
        self.state.phase = phase
        self._tasks.cancel()
        plane = self.plane()
        if plane is None or self.call.ended:  # the media went with the call; Janus closed the files
            return
        participants = list(self.call.participants.values())
        with contextlib.suppress(MediaError):
            if self.unmixed:
                legs = [p.audio for p in participants if p.audio is not None]
                await asyncio.gather(*(leg.record(None) for leg in legs), return_exceptions=True)
                return
            await plane.record_mix(self.call.media, None)
            if self.with_video:
                feeds = [feed for p in participants for feed in p.feeds.values()]
                await asyncio.gather(*(feed.record(None) for feed in feeds), return_exceptions=True)

    async def _record_leg(self, participant: Participant, segment: Segment) -> None:
        leg = participant.audio
        if leg is None or not participant.in_call:
            return
        self.state.legs[participant.id] = participant.user_id
        try:
            await leg.record(leg_base(self.folder, segment.index, participant.id))
        except MediaError as exc:
            log.warning("recording %s: could not record a participant's leg: %s", self.state.id, exc)

    async def _record_feed(self, participant: Participant, source: MediaSource, segment: Segment) -> None:
        feed = participant.feeds.get(source)
        if feed is None or not participant.in_call:
            return
        key = feed_key(participant.id, source)
        self.state.feeds[key] = str(source)
        try:
            await feed.record(feed_base(self.folder, segment.index, key, feed.feed_id))
        except MediaError as exc:
            log.warning("recording %s: could not record a %s: %s", self.state.id, source, exc)

    def _plane(self) -> MediaPlane:
        plane = self.plane()
        if plane is None:
            raise MediaError("the media server is not running")
        return plane
