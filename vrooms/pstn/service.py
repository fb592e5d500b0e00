"""Phone legs in room calls: who may dial what, dial-in admission, DTMF. No SIP or RTP here.

Implements ``calls.call.Telephony`` for the signaling requests, and the server's own
dial-out (Call Automation) through the same ``dial``. The rules:

- a participant dials out only with ``pstnDialOut`` in its role *and* a room whose
  ``pstnDialOutEnabled`` is true (``calls.rules.ensure``, re-checked after the awaits);
- the number is E.164, allowed by the prefix list, and the room is under its phone-leg limit;
- a dial-in caller is admitted by the static rule (number -> room and PIN) after keying the PIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vrooms.auth.roles import Capability, Role
from vrooms.callbacks import ids
from vrooms.calls import protocol
from vrooms.calls.call import Call, Check, Participant
from vrooms.calls.interface import RoomCalls
from vrooms.calls.models import CallRefused, LeaveReason, ParticipantState, Refusal
from vrooms.calls.rules import ensure
from vrooms.events import payloads
from vrooms.events import repository as outbox
from vrooms.media.types import MediaError, MediaEvent
from vrooms.pstn import numbers
from vrooms.pstn.bridge import NoPeers, SipPeers, bridge
from vrooms.pstn.config import DialInRule, Telephony
from vrooms.pstn.leg import PhoneLeg
from vrooms.pstn.ng import NgError
from vrooms.pstn.rtpengine import PHONE_TAG, Rtpengine
from vrooms.pstn.sip import IncomingCall, SipEvent, SipHandler, SipStack
from vrooms.rooms import repository as rooms_repository
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.pstn")

_PIN_ATTEMPTS = 3
# A dial-out that arrives while rtpengine (re)starts waits this long for it.
_ENGINE_WAIT_SECONDS = 5.0
_DIGIT_TIMEOUT_SECONDS = 10.0


# What the caller's carrier hears when an app rejects (ACS callRejectReason -> SIP).
_REJECT_PHRASES = {486: "Busy Here", 403: "Forbidden", 603: "Decline", 480: "Temporarily Unavailable"}


@dataclass
class _Ringing:
    """A caller without a dial-in rule, ringing until an app answers it (Call Automation)."""

    incoming: IncomingCall
    events: asyncio.Queue[SipEvent]
    timer: asyncio.TimerHandle


@dataclass
class _Leg:
    leg: PhoneLeg
    participant: Participant | None = None
    # The dial-in conversation (prompt, PIN) until the caller is in a call.
    admission: asyncio.Task[None] | None = field(default=None, repr=False)


class PstnService:
    def __init__(self, calls: RoomCalls, config: Telephony, prompts: dict[str, Path]) -> None:
        self.calls = calls
        self.config = config
        self.prompts = prompts
        self.sip: SipStack | None = None
        # Where the rooms' calls are (a cluster's other nodes take the dial-ins for theirs).
        self.peers: SipPeers = NoPeers()
        self.engine: Rtpengine | None = None
        self._legs: dict[str, _Leg] = {}
        self._ringing: dict[str, _Ringing] = {}  # incomingCallContext -> the ringing caller
        self._engine_up = asyncio.Event()
        self._tasks = TaskSet(log)

    # -- dial-out ---------------------------------------------------------------------

    async def dial_out(self, actor: Participant, number: str) -> Participant:
        call = ensure(actor, Capability.PSTN_DIAL_OUT)
        # Checked again once the call is locked: a demotion or the room's flag turned off while
        # the relay answered stops the dial before the INVITE leaves.
        return await self.dial(call, number, by=actor.user_id, check=lambda: ensure(actor, Capability.PSTN_DIAL_OUT))

    async def dial(self, call: Call, number: str, *, by: str | None, check: Check | None = None) -> Participant:
        """The one dial-out path, for a Presenter and for the server (Call Automation, ``by=None``)."""
        try:
            number = numbers.e164(number)
        except numbers.InvalidNumber as exc:
            raise CallRefused(Refusal.BAD_MESSAGE, str(exc)) from None
        if not numbers.allowed(number, self.config.allow_prefixes):
            raise CallRefused(Refusal.NUMBER_NOT_ALLOWED, f"Dialing {number} is not allowed on this server.")
        sip, engine = await self._ready()
        participant = await self.calls.phones.admit(
            call, number, by=by, limit=self.config.max_legs_per_room, check=check
        )
        leg = self._new_leg(engine, participant.display_name)
        self._legs[leg.call_id] = _Leg(leg, participant)
        await self.calls.phones.attach_audio(participant, leg)
        try:
            await leg.dial(sip, number, call.media, no_answer_seconds=self.config.no_answer_seconds)
        except NgError as exc:
            log.warning("dial-out to a phone failed at rtpengine: %s", exc)
            await self.calls.leave(participant, LeaveReason.TELEPHONY_FAILURE)
        log.info("call %s: dialing a phone for %s", call.id, by or "the server")
        return participant

    async def _ready(self) -> tuple[SipStack, Rtpengine]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._engine_up.wait(), _ENGINE_WAIT_SECONDS)
        if self.sip is None or self.engine is None or self.calls.plane is None:
            raise CallRefused(
                Refusal.PSTN_UNAVAILABLE, "Telephone calls are starting or their relay failed; try again shortly."
            )
        return self.sip, self.engine

    def _new_leg(self, engine: Rtpengine, display: str, events: asyncio.Queue[SipEvent] | None = None) -> PhoneLeg:
        assert self.calls.plane is not None
        return PhoneLeg(engine, self.calls.plane, display=display, listener=self, events=events)

    def _participant(self, leg: PhoneLeg) -> Participant | None:
        entry = self._legs.get(leg.call_id)
        return entry.participant if entry is not None else None

    # -- pstn.leg.LegListener --------------------------------------------------------

    def leg_state(self, leg: PhoneLeg, state: ParticipantState) -> None:
        participant = self._participant(leg)
        if participant is not None:
            self.calls.set_state(participant, state)

    def leg_media_event(self, leg: PhoneLeg, event: MediaEvent) -> None:
        participant = self._participant(leg)
        if participant is not None:
            self.calls.on_audio_event(participant, event)

    def leg_ended(self, leg: PhoneLeg, reason: LeaveReason, code: int) -> None:
        entry = self._legs.pop(leg.call_id, None)
        if entry is None:
            return
        log.info("phone leg %s ended: %s (SIP %s)", leg.call_id, reason, code or "BYE")
        if entry.admission is not None:
            entry.admission.cancel()
        if entry.participant is not None:
            self._tasks.spawn(self.calls.leave(entry.participant, reason))
        else:
            self._tasks.spawn(leg.close())

    def leg_closed(self, leg: PhoneLeg) -> None:
        self._legs.pop(leg.call_id, None)

    # -- DTMF -------------------------------------------------------------------------

    async def send_dtmf(self, actor: Participant, participant_id: str, tones: str) -> None:
        call = ensure(actor, Capability.PSTN_DIAL_OUT)
        target = call.participants.get(participant_id)
        if target is None:
            raise CallRefused(Refusal.PARTICIPANT_NOT_FOUND, "No phone participant with that id is in the call.")
        await self.send_tones(target, tones)

    async def send_tones(self, target: Participant, tones: str) -> None:
        """RFC 4733 digits toward a phone participant (rtpengine injects them)."""
        try:
            tones = numbers.dtmf_tones(tones)
        except numbers.InvalidNumber as exc:
            raise CallRefused(Refusal.BAD_MESSAGE, str(exc)) from None
        leg = self._phone_leg(target)
        try:
            await leg.send_dtmf(tones)
        except NgError as exc:
            raise MediaError(exc.reason) from None

    def _phone_leg(self, target: Participant) -> PhoneLeg:
        leg = target.audio
        if not isinstance(leg, PhoneLeg) or not target.in_call:
            raise CallRefused(Refusal.PARTICIPANT_NOT_FOUND, "No phone participant with that id is in the call.")
        return leg

    async def play_to(self, target: Participant, file: Path) -> None:
        try:
            await self._phone_leg(target).play(file)
        except NgError as exc:
            raise MediaError(exc.reason) from None

    async def stop_playing(self, target: Participant) -> None:
        with contextlib.suppress(NgError, CallRefused):
            await self._phone_leg(target).stop_playing()

    def tone_received(self, call_id: str, tag: str, tone: str) -> None:
        """rtpengine heard an RFC 4733 digit; only digits from the phone side count."""
        entry = self._legs.get(call_id)
        if entry is None or tag != PHONE_TAG:
            return
        entry.leg.tone_received(tone)
        participant = entry.participant
        if participant is not None and participant.in_call:
            participant.call.broadcast(protocol.dtmf_received(participant.id, tone))

    # -- dial-in ----------------------------------------------------------------------

    def incoming(self, incoming: IncomingCall) -> SipHandler | None:
        """An INVITE from the trunk: a static rule admits it (PIN first); else it rings for an app.

        Every call raises ``IncomingCall``; without a rule, one that a subscriber receives rings
        until Call Automation answers, rejects or redirects it (``answer_incoming``...) or
        ``no_answer_seconds`` pass (480), and one nobody is subscribed to gets 404 at once.
        The dialog's events queue up from now on, while the relay may still be starting.
        """
        called = incoming.called if incoming.called.startswith("+") else f"+{incoming.called}"
        context = ids.with_node(self.calls.node, secrets.token_urlsafe(24))
        events: asyncio.Queue[SipEvent] = asyncio.Queue()
        rule = self.config.dial_in.get(called)
        if rule is not None:
            self._tasks.spawn(self._dial_in(incoming, called, context, rule, events))
        else:
            self._tasks.spawn(self._offer(incoming, called, context, events))
        return events.put_nowait

    async def _announce(self, incoming: IncomingCall, called: str, context: str) -> bool:
        """``Microsoft.Communication.IncomingCall``, as ACS emits it; whether any subscriber gets it."""
        event = payloads.incoming_call(
            called, _caller_number(incoming.caller), incoming.caller_name[:256], context, str(uuid.uuid4())
        )
        async with self.calls.database.write() as conn:
            await outbox.append(conn, event)
            subscriptions = await outbox.list_subscriptions(conn)
        self.calls.events_written()
        return any(not s.is_callback and (s.event_types is None or event.type in s.event_types) for s in subscriptions)

    async def _offer(self, incoming: IncomingCall, called: str, context: str, events: asyncio.Queue[SipEvent]) -> None:
        if not await self._announce(incoming, called, context):
            log.info("incoming call to %s refused: no dial-in rule and no IncomingCall subscriber", called)
            incoming.dialog.reject(404, "Not Found")
            return
        incoming.dialog.ring()
        timer = asyncio.get_running_loop().call_later(self.config.no_answer_seconds, self._unanswered, context)
        self._ringing[context] = _Ringing(incoming, events, timer)

    def _take_ringing(self, context: str) -> _Ringing:
        ringing = self._ringing.pop(context, None)
        if ringing is None:
            raise CallRefused(
                Refusal.INCOMING_CALL_NOT_FOUND, "No call is ringing with this incomingCallContext (answered or gone)."
            )
        ringing.timer.cancel()
        return ringing

    def _unanswered(self, context: str) -> None:
        with contextlib.suppress(CallRefused):
            self._take_ringing(context).incoming.dialog.reject(480, "Temporarily Unavailable")

    async def answer_incoming(self, context: str) -> Call:
        ringing = self._take_ringing(context)
        try:
            _, engine = await self._ready()
        except CallRefused:
            ringing.incoming.dialog.reject(503, "Service Unavailable")
            raise
        number = _caller_number(ringing.incoming.caller)
        lobby = await self.calls.phones.lobby_call(numbers.raw_id(number))
        leg = self._new_leg(engine, number, ringing.events)
        self._legs[leg.call_id] = _Leg(leg)
        await leg.answer(ringing.incoming)
        await self._seat(leg, lobby, number, limit=1)
        return lobby

    def reject_incoming(self, context: str, code: int) -> None:
        self._take_ringing(context).incoming.dialog.reject(code, _REJECT_PHRASES.get(code, "Declined"))

    def redirect_incoming(self, context: str, number: str) -> None:
        self._take_ringing(context).incoming.dialog.redirect(number)

    async def move(self, phone: Participant, to: Call) -> Participant:
        leg = self._phone_leg(phone)
        assert phone.phone_number is not None
        moved = await self.calls.phones.admit(to, phone.phone_number, by=None, limit=self.config.max_legs_per_room)
        entry = self._legs.get(leg.call_id)
        if entry is not None:
            entry.participant = moved
        phone.audio = None  # the leg goes on: it leaves the old call's mix, not the dialog
        await self.calls.leave(phone, LeaveReason.MOVED)
        await leg.move_mix(to.media)
        await self.calls.phones.attach_audio(moved, leg)
        self.calls.set_state(moved, ParticipantState.CONNECTED)
        return moved

    async def _dial_in(
        self, incoming: IncomingCall, called: str, context: str, rule: DialInRule, events: asyncio.Queue[SipEvent]
    ) -> None:
        """A static rule's caller: carried to the node that holds the room's call, else admitted here."""
        try:
            sip, engine = await self._ready()
        except CallRefused:
            incoming.dialog.reject(503, "Service Unavailable")
            return
        peer = await self.peers.holder(rule.room_id)
        if peer is not None:  # that node announces the call and asks for the PIN
            await bridge(sip, engine, incoming, peer, self.peers, events)
            return
        self._tasks.spawn(self._announce(incoming, called, context))
        await self._admit(incoming, rule, engine, events)

    async def _admit(
        self, incoming: IncomingCall, rule: DialInRule, engine: Rtpengine, events: asyncio.Queue[SipEvent]
    ) -> None:
        leg = self._new_leg(engine, _caller_number(incoming.caller), events)
        self._legs[leg.call_id] = _Leg(leg, admission=asyncio.current_task())
        try:
            await leg.answer(incoming)
            if not await self._pin_accepted(leg, rule.pin):
                self.leg_ended(leg, LeaveReason.WRONG_PIN, 0)
                return
            await self._into_room(leg, rule.room_id, _caller_number(incoming.caller))
        except (MediaError, NgError, CallRefused) as exc:
            log.warning("dial-in caller could not be admitted: %s", getattr(exc, "reason", exc))
            self.leg_ended(leg, LeaveReason.CALL_FAILED, 0)

    async def _pin_accepted(self, leg: PhoneLeg, pin: str) -> bool:
        for attempt in range(_PIN_ATTEMPTS):
            await self._prompt(leg, "pin" if attempt == 0 else "wrong")
            if await self._collect(leg, len(pin)) == pin:
                return True
        await self._prompt(leg, "goodbye")
        return False

    async def _prompt(self, leg: PhoneLeg, name: str) -> None:
        file = self.prompts.get(name)
        if file is not None:
            with contextlib.suppress(NgError):  # a prompt that cannot play must not block admission
                await leg.play(file)

    @staticmethod
    async def _collect(leg: PhoneLeg, length: int) -> str:
        """Digits until ``#`` or ``length`` of them; an empty string if the caller stays silent."""
        digits = ""
        with contextlib.suppress(TimeoutError):
            while len(digits) < length:
                tone = await asyncio.wait_for(leg.tones.get(), _DIGIT_TIMEOUT_SECONDS)
                if tone == "#":
                    break
                digits += tone
        return digits

    async def _into_room(self, leg: PhoneLeg, room_id: str, number: str) -> None:
        async with self.calls.database.read() as conn:
            room = await rooms_repository.get_room(conn, room_id)
        now = self.calls.clock()
        if room is None or not room.valid_from <= now < room.valid_until:
            raise CallRefused(Refusal.ROOM_NOT_FOUND, f"dial-in room {room_id} does not exist or is not open")
        call = await self.calls.call_of(room, numbers.raw_id(number), Role.ATTENDEE)
        await self._seat(leg, call, number, limit=self.config.max_legs_per_room)

    async def _seat(self, leg: PhoneLeg, call: Call, number: str, *, limit: int) -> None:
        """An answered caller becomes a participant of ``call``, in its mix, Connected."""
        participant = await self.calls.phones.admit(call, number, by=None, limit=limit)
        entry = self._legs.get(leg.call_id)
        if entry is None:  # the caller hung up meanwhile
            await self.calls.leave(participant, LeaveReason.HUNG_UP)
            return
        entry.participant, entry.admission = participant, None
        await self.calls.phones.attach_audio(participant, leg)
        await leg.join_mix(call.media)
        self.calls.set_state(participant, ParticipantState.CONNECTED)

    # -- the relay's lifetime -------------------------------------------------------------

    def engine_ready(self, engine: Rtpengine) -> None:
        self.engine = engine
        self._engine_up.set()

    async def engine_lost(self) -> None:
        """rtpengine died: every phone leg ends with a reason (no media can flow), new ones wait."""
        self.engine = None
        self._engine_up.clear()
        for entry in list(self._legs.values()):
            self.leg_ended(entry.leg, LeaveReason.TELEPHONY_FAILURE, 0)

    async def shutdown(self) -> None:
        for entry in list(self._legs.values()):
            await entry.leg.close()
        self._tasks.cancel()


def _caller_number(caller: str) -> str:
    """The caller as E.164 where the trunk sent digits; anything else stays as sent (display only)."""
    candidate = caller if caller.startswith("+") else f"+{caller}"
    try:
        return numbers.e164(candidate)
    except numbers.InvalidNumber:
        return "+0000000"
