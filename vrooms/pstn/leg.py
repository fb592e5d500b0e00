"""One telephone leg: a SIP dialog at the trunk, an rtpengine session, a plain-RTP leg in the mix.

The leg is a participant's ``AudioLeg`` (``media.types``), so the call rules treat it
as any other: a server mute is the mixer mute, removal closes it. The same leg serves
a Presenter's dial-out, the server's (Call Automation) and a dial-in: only how the
dialog starts differs (``dial`` or ``answer``).

Media path::

    carrier <-RTP (G.711, RFC 4733)-> rtpengine [phone tag | room tag] <-RTP (PCMU)-> AudioBridge

SIP final responses map to leave reasons as ACS reports them for PSTN legs
(``reason_for``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from functools import partial
from pathlib import Path
from typing import Protocol

from vrooms.calls.models import LeaveReason, ParticipantState
from vrooms.media.types import AudioLeg, CallMedia, MediaError, MediaEvent, MediaPlane
from vrooms.pstn.ng import NgError
from vrooms.pstn.rtpengine import PHONE_TAG, ROOM_TAG, Rtpengine, audio_port, room_side_sdp
from vrooms.pstn.sip import Answered, Dialog, Ended, IncomingCall, Progress, SipEvent, SipStack

log = logging.getLogger("vrooms.pstn")

# RFC 3261 §21 status codes -> why the phone participant left.
_REASONS: dict[int, LeaveReason] = {
    486: LeaveReason.BUSY,
    600: LeaveReason.BUSY,
    408: LeaveReason.NO_ANSWER,
    487: LeaveReason.NO_ANSWER,
    603: LeaveReason.DECLINED,
    404: LeaveReason.NUMBER_NOT_FOUND,
    484: LeaveReason.NUMBER_NOT_FOUND,
    604: LeaveReason.NUMBER_NOT_FOUND,
    480: LeaveReason.UNAVAILABLE,
    502: LeaveReason.UNAVAILABLE,
    503: LeaveReason.UNAVAILABLE,
    504: LeaveReason.UNAVAILABLE,
}


def reason_for(event: Ended) -> LeaveReason:
    if event.code == 0:
        return LeaveReason.HUNG_UP
    return _REASONS.get(event.code, LeaveReason.CALL_FAILED)


class LegListener(Protocol):
    """Who hears of a leg's life (``pstn.service``): its state, its end, its mix events, its close."""

    def leg_state(self, leg: PhoneLeg, state: ParticipantState) -> None: ...

    def leg_ended(self, leg: PhoneLeg, reason: LeaveReason, code: int) -> None: ...

    def leg_media_event(self, leg: PhoneLeg, event: MediaEvent) -> None: ...

    def leg_closed(self, leg: PhoneLeg) -> None: ...


class PhoneLeg:
    """Implements ``media.types.AudioLeg`` for a phone; events arrive in order on one task."""

    def __init__(
        self,
        engine: Rtpengine,
        plane: MediaPlane,
        *,
        display: str,
        listener: LegListener,
        events: asyncio.Queue[SipEvent] | None = None,
    ) -> None:
        """``events``: the queue an incoming dialog has been filling already (dial-in)."""
        self.engine = engine
        self.plane = plane
        self.display = display
        self.listener = listener
        self.call_id = f"vrooms-{uuid.uuid4()}"
        self.dialog: Dialog | None = None
        self.tones: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self.connected = False
        self._media: CallMedia | None = None
        self._room_port: int | None = None
        # The carrier's last SDP when it answered a dial-out (None: the carrier called in).
        self._far_sdp: str | None = None
        self._mix: AudioLeg | None = None
        self._muted = False
        self._record_base: Path | None = None
        self._slot: int | None = None
        self._closed = False
        self._events: asyncio.Queue[SipEvent] = events if events is not None else asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._no_answer: asyncio.TimerHandle | None = None

    # -- starting -----------------------------------------------------------------

    async def dial(self, sip: SipStack, number: str, media: CallMedia, *, no_answer_seconds: float) -> None:
        """INVITE the number; the mix joins at the first SDP from the far end (183 or 200)."""
        self._media = media
        offer = await self.engine.offer(self.call_id, ROOM_TAG, room_side_sdp())
        self._start_worker()
        if self._closed:
            return
        self.dialog = sip.dial(number, offer, self._events.put_nowait)
        self._no_answer = asyncio.get_running_loop().call_later(no_answer_seconds, self._give_up)

    async def answer(self, incoming: IncomingCall) -> None:
        """Answer a call from the trunk; media reaches the mix only once ``join_mix`` names the call."""
        if incoming.sdp is None:
            incoming.dialog.reject(488, "Not Acceptable Here")
            raise MediaError("the caller's INVITE had no SDP offer")
        self.dialog = incoming.dialog
        self._start_worker()
        room_offer = await self.engine.offer(self.call_id, PHONE_TAG, incoming.sdp)
        self._room_port = audio_port(room_offer)
        phone_answer = await self.engine.answer(self.call_id, PHONE_TAG, ROOM_TAG, room_side_sdp())
        incoming.dialog.answer(phone_answer)
        self.connected = True

    async def join_mix(self, media: CallMedia) -> None:
        self._media = media
        await self._join()

    async def move_mix(self, media: CallMedia) -> None:
        """Leave one call's mix for another's (a caller moved out of its lobby); the dialog goes on."""
        mix, self._mix = self._mix, None
        self._record_base = None  # the old call's recording; the new call's tells its own
        self._slot = None
        if mix is not None:
            with contextlib.suppress(MediaError):
                await mix.close()
        await self.join_mix(media)

    def _start_worker(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    def _give_up(self) -> None:
        if not self.connected and not self._closed:
            self._events.put_nowait(Ended(408, "No answer (timeout)", by_remote=False))

    # -- SIP events, in order -------------------------------------------------------

    async def _work(self) -> None:
        while True:
            event = await self._events.get()
            try:
                if await self._handle(event):
                    return
            except (MediaError, NgError) as exc:
                log.warning("phone leg %s failed: %s", self.call_id, exc)
                self.listener.leg_ended(self, LeaveReason.CALL_FAILED, 0)
                return

    async def _handle(self, event: SipEvent) -> bool:
        """One SIP event; True once the leg is over."""
        if isinstance(event, Progress):
            if event.sdp:
                await self._far_end_media(event.sdp)
            self.listener.leg_state(self, ParticipantState.EARLY_MEDIA if event.sdp else ParticipantState.RINGING)
        elif isinstance(event, Answered):
            self.connected = True
            if self._no_answer is not None:
                self._no_answer.cancel()
            if event.sdp:
                await self._far_end_media(event.sdp)
            self.listener.leg_state(self, ParticipantState.CONNECTED)
        elif isinstance(event, Ended):
            self.listener.leg_ended(self, reason_for(event), event.code)
            return True
        return False

    async def _far_end_media(self, sdp: str) -> None:
        self._far_sdp = sdp
        room_answer = await self.engine.answer(self.call_id, ROOM_TAG, PHONE_TAG, sdp)
        self._room_port = audio_port(room_answer)
        if self._mix is None and self._media is not None:
            await self._join()

    async def _join(self) -> None:
        assert self._media is not None and self._room_port is not None
        mix, (_, port) = await self.plane.join_rtp(
            self._media,
            display=self.display,
            send_to=("127.0.0.1", self._room_port),
            muted=self._muted,
            on_event=partial(self.listener.leg_media_event, self),
        )
        if self._closed:
            with contextlib.suppress(MediaError):
                await mix.close()
            return
        self._mix = mix
        if self._record_base is not None:
            await mix.record(self._record_base)
        if self._slot is not None:
            await mix.isolate(self._slot)
        await self._point_room_side(port)
        log.info("phone leg %s in the mix (rtpengine %d <-> AudioBridge %d)", self.call_id, self._room_port, port)

    async def _point_room_side(self, port: int) -> None:
        """Tell rtpengine where the AudioBridge listens (it sends only after it has heard from us)."""
        sdp = room_side_sdp(port, version=2)
        if self._far_sdp is not None:  # we offered: re-offer, and the carrier's answer again
            await self.engine.offer(self.call_id, ROOM_TAG, sdp)
            await self.engine.answer(self.call_id, ROOM_TAG, PHONE_TAG, self._far_sdp)
        else:  # the carrier offered: answer again
            await self.engine.answer(self.call_id, PHONE_TAG, ROOM_TAG, sdp)
        await self.engine.wake_room(self.call_id)

    # -- AudioLeg ----------------------------------------------------------------------

    async def set_muted(self, muted: bool) -> None:
        self._muted = muted
        mix = self._mix
        if mix is not None:
            await mix.set_muted(muted)

    async def renegotiate(self, offer_sdp: str, *, may_send: bool) -> str:
        raise MediaError("a phone leg has no WebRTC session to renegotiate")

    async def record(self, base: Path | None) -> None:
        # Remembered: a leg still ringing has no mix yet, and starts recording once it has.
        self._record_base = base
        mix = self._mix
        if mix is not None:
            await mix.record(base)

    async def isolate(self, slot: int | None) -> None:
        self._slot = slot
        mix = self._mix
        if mix is not None:
            await mix.isolate(slot)

    async def close(self) -> None:
        """Hang up (CANCEL if still ringing, BYE once answered), free the relay and the mix leg."""
        if self._closed:
            return
        self._closed = True
        self.listener.leg_closed(self)
        if self._no_answer is not None:
            self._no_answer.cancel()
        if self.dialog is not None:
            self.dialog.hang_up()
        if self._worker is not None:
            self._worker.cancel()
        await self.engine.delete(self.call_id)
        mix = self._mix
        if mix is not None:
            with contextlib.suppress(MediaError):
                await mix.close()

    # -- DTMF and prompts --------------------------------------------------------------

    def tone_received(self, tone: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.tones.put_nowait(tone)

    async def send_dtmf(self, tones: str) -> None:
        for tone in tones:
            await self.engine.send_dtmf(self.call_id, tone)

    async def play(self, file: Path) -> None:
        await self.engine.play_to_phone(self.call_id, file)

    async def stop_playing(self) -> None:
        await self.engine.stop_playing_to_phone(self.call_id)
