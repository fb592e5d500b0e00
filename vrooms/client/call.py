"""One participation in a room call (``client.CallClient.join`` makes it): its state and media.

A call uses up to four aiortc peer connections to the media server, because that
is how Janus's plugins split the work: audio (the server's mix, both ways), camera
and screen (one publisher each) and the video of everyone else (one multistream
subscriber, renegotiated by the server as people start and stop their cameras).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from vrooms.client.comeback import come_back
from vrooms.client.media import AudioSink, ToneSource, VideoSink
from vrooms.client.signaling import CallError
from vrooms.supervision import TaskSet

if TYPE_CHECKING:
    from vrooms.client.client import CallClient


# What each published source needs (the server's role table decides; this follows it).
_SOURCE_CAPABILITY = {"camera": "sendVideo", "screen": "shareScreen"}


class CallState(StrEnum):
    """A call as this client sees it (the ACS Calling SDK's names; an invitation rings: ``IncomingCall``)."""

    CONNECTING = "Connecting"
    CONNECTED = "Connected"
    ON_HOLD = "OnHold"
    DISCONNECTED = "Disconnected"


Handler = Callable[[dict[str, Any]], None]


class Call:
    """One participation in a room call: state, participants, operations, media in and out."""

    def __init__(self, client: CallClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id
        self.id = ""
        self.participant_id = ""
        self.role = ""
        self.capabilities: list[str] = []
        self.state = CallState.CONNECTING
        self.participants: dict[str, dict[str, Any]] = {}
        self.active_speaker: str | None = None
        self.captions: dict[str, Any] = {}
        # Captions received while captions are on (ACS's CaptionsReceived): Partial, then Final.
        self.captions_received: list[dict[str, Any]] = []
        self.muted = False
        self.end_reason: str | None = None
        self.left_reason: str | None = None
        self.remote_audio: AudioSink | None = None
        # (participantId, "camera" | "screen") -> the frames received from it
        self.remote_video: dict[tuple[str, str], VideoSink] = {}
        # Audio sent to this participant alone (a Call Automation prompt), by mid: heard beside the mix.
        self.private_audio: dict[str, AudioSink] = {}
        self.events: list[dict[str, Any]] = []
        self._handlers: dict[str, list[Handler]] = {}
        self._changed = asyncio.Condition()
        # The TURN servers the room's checkRoom named (none: host candidates only, no public STUN).
        self.ice_servers: list[RTCIceServer] = []
        self._audio_pc = self._peer_connection()
        self._publishers: dict[str, RTCPeerConnection] = {}
        self._subscriber: RTCPeerConnection | None = None
        # mid -> the stream's description in the last videoOffer (kind, participantId, source)
        self._mids: dict[str, dict[str, Any]] = {}
        self._tasks = TaskSet(logging.getLogger("vrooms.client"))
        self._renegotiation = asyncio.Lock()
        # What the join sent, to send it again when the call comes back (see client.comeback).
        self._audio: MediaStreamTrack | None = None
        self._display_name = ""
        self._leaving = False
        self._coming_back = False
        self._republish: dict[str, MediaStreamTrack] = {}
        # Where the server said the call went (its nodes), until the client has come back.
        self.moved_to: list[str] | None = None

    # -- events -----------------------------------------------------------------------

    def on(self, event_type: str, handler: Handler) -> None:
        """Call ``handler(message)`` for every event of this type (participantJoined, activeSpeaker, ...)."""
        self._handlers.setdefault(event_type, []).append(handler)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every event and every 100 ms."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the call did not reach the expected state in time")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        self.events.append(message)
        if kind in ("participantJoined", "participantUpdated"):
            participant = message["participant"]
            if participant["participantId"] == self.participant_id:
                self.muted = participant["muted"]
            else:
                self.participants[participant["participantId"]] = participant
        elif kind == "participantLeft":
            self.participants.pop(message["participantId"], None)
        elif kind == "activeSpeaker":
            self.active_speaker = message["participantId"]
        elif kind == "permissions":
            self.role, self.capabilities = message["role"], message["capabilities"]
            self._tasks.spawn(self._drop_forbidden_media())
        elif kind == "mutedByOthers":
            self.muted = True
        elif kind == "captions":
            self.captions = {**self.captions, **{k: v for k, v in message.items() if k != "type"}}
        elif kind == "captionsReceived":
            self.captions_received.append(message)
        elif kind == "videoOffer":
            self._tasks.spawn(self._answer_video(message))
        elif kind == "callMoved":
            self.moved_to = [str(node) for node in message.get("nodes") or []]
        elif kind == "left" and message.get("reason") == "CallMoved":
            self._come_back()  # the call goes on on another node
        elif kind == "left":
            self.left_reason = message.get("reason")
            self.end_reason = message.get("callEndReason")
            self._set_state(CallState.DISCONNECTED)
            self._tasks.spawn(self.close_media())
        elif kind == "connectionClosed" and self.state != CallState.DISCONNECTED and not self._leaving:
            if self.client.clustered:
                self._come_back()  # the node went away: the call goes on on another
            else:  # a single node's call host restarted: its calls ended with it
                self.left_reason = "ConnectionLost"
                self._set_state(CallState.DISCONNECTED)
                self._tasks.spawn(self.close_media())
        for handler in self._handlers.get(kind, []):
            handler(message)
        self._tasks.spawn(self._notify())

    def _come_back(self) -> None:
        if not self._coming_back:
            self._coming_back = True
            self._set_state(CallState.CONNECTING)
            self._tasks.spawn(come_back(self.client, self))

    async def reset_media(self) -> None:
        """Before joining again: the old peer connections go (their server side is gone); what
        they published is kept, to be published again once back."""
        for source, pc in self._publishers.items():
            track = pc.getTransceivers()[0].sender.track
            if track is not None:
                self._republish[source] = track
        await self.close_media()
        self._audio_pc = self._peer_connection()
        self._subscriber = None
        self._mids.clear()
        self.participants.clear()
        self.remote_audio = None
        self.remote_video.clear()
        self.private_audio.clear()

    async def rejoin(self) -> None:
        """Join the same room again (the server puts this client back in the same call)."""
        try:
            await self.start(self._audio, self._display_name, muted=self.muted)
        except BaseException:
            await self.reset_media()  # a half-made peer connection is not reused
            raise
        self._coming_back = False
        republish, self._republish = self._republish, {}
        for source, track in republish.items():
            if _SOURCE_CAPABILITY[source] in self.capabilities:
                with contextlib.suppress(CallError):  # the call is back either way; a camera can be retried
                    await self.start_video(track, source)

    def give_up(self) -> None:
        self._coming_back = False
        self.left_reason = "ConnectionLost"
        self._set_state(CallState.DISCONNECTED)
        self._tasks.spawn(self.close_media())

    def _peer_connection(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))

    def _set_state(self, state: CallState) -> None:
        if state != self.state:
            self.state = state
            self.handle({"type": "stateChanged", "state": state})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- joining ----------------------------------------------------------------------

    async def start(self, audio: MediaStreamTrack | None, display_name: str, *, muted: bool = False) -> None:
        self._audio, self._display_name = audio, display_name
        room = await self.client.signaling.request({"type": "checkRoom", "roomId": self.room_id})
        self.ice_servers = [
            RTCIceServer(urls=_tcp_first(s["urls"]), username=s.get("username"), credential=s.get("credential"))
            for s in room.get("iceServers", [])
        ]
        await self._audio_pc.close()  # made before the ICE servers were known, never used
        self._audio_pc = pc = self._peer_connection()

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self.remote_audio = AudioSink(track)

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc is not self._audio_pc:
                return  # a peer connection left behind when the call came back on another node
            if pc.connectionState == "connected" and self.state == CallState.CONNECTING:
                self._set_state(CallState.CONNECTED)
            elif pc.connectionState == "failed" and self.state != CallState.DISCONNECTED:
                self._set_state(CallState.DISCONNECTED)

        pc.addTransceiver(audio or ToneSource(0), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.client.signaling.request(
            {
                "type": "join",
                "roomId": self.room_id,
                "displayName": display_name,
                "sdp": pc.localDescription.sdp,
                **({"muted": True} if muted else {}),
            }
        )
        self.id, self.participant_id = reply["callId"], reply["participantId"]
        self.role, self.capabilities = reply["role"], reply["capabilities"]
        self.active_speaker, self.captions = reply["activeSpeaker"], reply["captions"]
        for participant in reply["participants"]:
            if participant["participantId"] == self.participant_id:
                self.muted = participant["muted"]
            else:
                self.participants[participant["participantId"]] = participant
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    # -- operations -------------------------------------------------------------------

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        return await self.client.signaling.request(message)

    async def mute(self) -> None:
        await self.request({"type": "setMuted", "muted": True})
        self.muted = True

    async def unmute(self) -> None:
        await self.request({"type": "setMuted", "muted": False})
        self.muted = False

    async def hold(self) -> None:
        """Out of the mix, shown OnHold to the others; the received mix stops playing meanwhile."""
        await self.request({"type": "hold"})
        if self.remote_audio is not None:
            self.remote_audio.playing = False
        self._set_state(CallState.ON_HOLD)

    async def resume(self) -> None:
        await self.request({"type": "resume"})
        if self.remote_audio is not None:
            self.remote_audio.playing = True
        self._set_state(CallState.CONNECTED)

    async def start_video(self, track: MediaStreamTrack, source: str = "camera") -> None:
        """Publish a camera (or, with ``source="screen"``, a screen share)."""
        await self.stop_video(source)
        pc = self._peer_connection()
        pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            reply = await self.request({"type": "publish", "source": source, "sdp": pc.localDescription.sdp})
        except CallError:
            await pc.close()
            raise
        self._publishers[source] = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    async def replace_video(self, track: MediaStreamTrack, source: str = "camera") -> None:
        """Send ``track`` in place of the published camera (or screen), on the same connection.

        The feed stays the same, so nobody's subscription is renegotiated and the others'
        picture never stops (``start_video`` again would unpublish and publish anew);
        publishes ``track`` if nothing is published yet.
        """
        pc = self._publishers.get(source)
        if pc is None:
            await self.start_video(track, source)
            return
        pc.getTransceivers()[0].sender.replaceTrack(track)

    async def stop_video(self, source: str = "camera") -> None:
        pc = self._publishers.pop(source, None)
        if pc is not None:
            with contextlib.suppress(CallError):
                await self.request({"type": "unpublish", "source": source})
            await pc.close()

    async def start_screen_share(self, track: MediaStreamTrack) -> None:
        await self.start_video(track, "screen")

    async def stop_screen_share(self) -> None:
        await self.stop_video("screen")

    async def mute_participant(self, participant_id: str) -> None:
        await self.request({"type": "muteParticipant", "participantId": participant_id})

    async def remove_participant(self, participant_id: str) -> None:
        await self.request({"type": "removeParticipant", "participantId": participant_id})

    async def end_for_all(self) -> None:
        await self.request({"type": "endForAll"})

    async def invite(self, user_id: str) -> int:
        return int((await self.request({"type": "invite", "userId": user_id}))["ringing"])

    async def dial_out(self, phone_number: str) -> str:
        """Bring a phone (E.164) into the call; its participant id. Needs ``pstnDialOut`` and a room that allows it.

        The phone appears as a participant (``4:+1555...``) that goes Connecting, Ringing or
        EarlyMedia, Connected; ``participantLeft`` tells why it left (Busy, NoAnswer, HungUp, ...).
        """
        return str((await self.request({"type": "dialOut", "phoneNumber": phone_number}))["participantId"])

    async def send_dtmf(self, participant_id: str, tones: str) -> None:
        """Send RFC 4733 digits (0-9 * # A-D) to a phone participant; digits it keys arrive as ``dtmfReceived``."""
        await self.request({"type": "sendDtmf", "participantId": participant_id, "tones": tones})

    async def start_captions(self, language: str | None = None) -> dict[str, Any]:
        """Captions on for everyone (``captionsReceived`` then arrives); ``self.captions`` says the
        languages there are models for (``supportedSpokenLanguages``) and the engine."""
        return await self.request({"type": "captions", "action": "start", "language": language})

    async def show_video(self, streams: list[tuple[str, str]] | None) -> None:
        """Receive only these videos, ``(participantId, "camera" | "screen")`` (what a screen shows:
        a page of the grid, the active speaker); None: every video, the default."""
        listed = None if streams is None else [{"participantId": p, "source": source} for p, source in streams]
        await self.request({"type": "visibleVideo", "streams": listed})

    async def stop_captions(self) -> dict[str, Any]:
        return await self.request({"type": "captions", "action": "stop"})

    async def set_caption_language(self, language: str) -> dict[str, Any]:
        return await self.request({"type": "captions", "action": "setLanguage", "language": language})

    async def list_participants(self) -> list[dict[str, Any]]:
        """Everyone in the call, then the roster members who are not (state ``Idle``)."""
        listing = await self.request({"type": "listParticipants"})
        return [*listing["participants"], *listing["idle"]]

    async def leave(self) -> None:
        self._leaving = True
        if self.state != CallState.DISCONNECTED:
            with contextlib.suppress(CallError):
                await self.request({"type": "leave"})
            await self.wait_until(lambda: self.state == CallState.DISCONNECTED)
        await self.close_media()

    # -- media ------------------------------------------------------------------------

    async def _drop_forbidden_media(self) -> None:
        for source, capability in _SOURCE_CAPABILITY.items():
            if capability not in self.capabilities and source in self._publishers:
                await self._publishers.pop(source).close()

    async def _answer_video(self, offer: dict[str, Any]) -> None:
        async with self._renegotiation:
            if self._subscriber is None:
                self._subscriber = self._peer_connection()
                self._subscriber.on("track", self._on_video_track)
            pc = self._subscriber
            for stream in offer.get("streams", []):
                self._mids[stream["mid"]] = stream
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            with contextlib.suppress(CallError):
                await self.request({"type": "videoAnswer", "sdp": pc.localDescription.sdp})

    def _on_video_track(self, track: MediaStreamTrack) -> None:
        assert self._subscriber is not None
        for transceiver in self._subscriber.getTransceivers():
            if transceiver.receiver.track is not track or transceiver.mid not in self._mids:
                continue
            stream = self._mids[transceiver.mid]
            if track.kind == "audio":
                self.private_audio[transceiver.mid] = AudioSink(track)
            else:
                self.remote_video[(stream["participantId"], stream["source"])] = VideoSink(track)

    def tone_level(self, frequency: float) -> float:
        """How loud ``frequency`` is in what this participant hears: the mix and audio for it alone."""
        sinks = [sink for sink in [self.remote_audio, *self.private_audio.values()] if sink is not None]
        return max((sink.tone_level(frequency) for sink in sinks), default=0.0)

    def video_frames(self, participant_id: str, source: str = "camera") -> int:
        sink = self.remote_video.get((participant_id, source))
        return sink.frames if sink else 0

    async def close_media(self) -> None:
        for pc in [self._audio_pc, *self._publishers.values(), *([self._subscriber] if self._subscriber else [])]:
            await pc.close()
        self._publishers.clear()


def _tcp_first(urls: list[str]) -> list[str]:
    """aiortc uses one TURN URL, the first: TURN over TCP, which reaches the relay from networks
    that drop UDP (where UDP works, ICE prefers the direct path anyway)."""
    return sorted(urls, key=lambda url: not (url.startswith("turn:") and url.endswith("transport=tcp")))
