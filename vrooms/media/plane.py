"""The media plane over Janus plugins: ``media.types`` implemented with AudioBridge and VideoRoom.

Audio: one AudioBridge room per call (Janus mixes; each participant hears everyone
but themself). Video and screen share: one VideoRoom room per call; each camera or
screen is a publisher feed of one video stream, each participant has one multistream
subscriber handle that takes exactly that stream of each feed (by ``mid``), never
anything else a publisher might carry. Audio for chosen participants only (a targeted
prompt) is a VideoRoom remote publisher of one audio stream, taken by their handles alone.
Plugin APIs: the comment blocks at the top of janus_audiobridge.c and janus_videoroom.c
(janus-gateway 1.1).

Janus vocabulary stops here: replies, events and errors leave this package as the
typed values of ``media.types``. The AudioBridge half is ``audiobridge``, the VideoRoom half
``videoroom``; what both share, ``janus_support``.
"""

from __future__ import annotations

from vrooms.media.audiobridge import AudioBridgePlane
from vrooms.media.janus_support import SHARED_GROUP, SLOT_GROUPS, JanusCallMedia, mapped_errors, new_id, quietly
from vrooms.media.types import CallMedia
from vrooms.media.videoroom import VideoRoomPlane
from vrooms.supervision import to_the_end


class JanusMediaPlane(AudioBridgePlane, VideoRoomPlane):
    """Rooms and legs on one connected Janus (implements ``media.types.MediaPlane``)."""

    async def create_call(self, description: str, max_publishers: int) -> JanusCallMedia:
        with mapped_errors():
            audio, video = await self.controls()
            media = JanusCallMedia(audio_room=new_id(), video_room=new_id())
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
                    "groups": [SHARED_GROUP, *SLOT_GROUPS],
                    **self.admin(),
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
                        **self.admin(),
                    }
                )
            except BaseException:  # the audio room must not outlive a call that never started
                await to_the_end(quietly(self.destroy_call(media)))
                raise
            return media

    async def destroy_call(self, media: CallMedia) -> None:
        assert isinstance(media, JanusCallMedia)
        with mapped_errors():
            audio, video = await self.controls()
            await audio.request({"request": "destroy", "room": media.audio_room, "secret": media.secret})
            await video.request({"request": "destroy", "room": media.video_room, "secret": media.secret})
