"""What an app does to a call's participants: list them, add one (ring a roster member, dial a
phone), cancel an add, remove, mute, hold, and move phones in from another call.

The server acts above every role (an app may mute a Presenter), but not above the room: a
phone target needs the room's ``pstnDialOutEnabled``, checked under the call's lock as a
Presenter's dial-out is. An add answers at once and reports through the connection's
callbacks (AddParticipantSucceeded / Failed), as ACS does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vrooms.automation.connection import AUTOMATION_USER, IN_CALL_STATES, Connection, PendingAdd
from vrooms.automation.schemas import AddRequest, CancelAddRequest, MoveRequest, TargetRequest, participant_to_wire
from vrooms.callbacks import results
from vrooms.calls.call import Call, Participant, Telephony
from vrooms.calls.interface import RoomCalls
from vrooms.calls.models import CallRefused, LeaveReason, ParticipantState, Refusal
from vrooms.errors import ApiError, bad_argument, not_found
from vrooms.events.models import EventType
from vrooms.pstn import numbers
from vrooms.supervision import TaskSet

_DEFAULT_INVITATION_SECONDS = 30.0


def _phones_allowed(call: Call) -> None:
    if not call.pstn_dial_out_enabled:
        raise CallRefused(
            Refusal.PSTN_DIAL_OUT_DISABLED,
            "This room does not allow phone participants (its pstnDialOutEnabled is false).",
        )


def telephony_of(calls: RoomCalls) -> Telephony:
    if calls.telephony is None:
        raise CallRefused(Refusal.PSTN_UNAVAILABLE, "This server has no SIP trunk (VROOMS_SIP_TRUNK_URI).")
    return calls.telephony


def wire(participant: Participant) -> dict[str, Any]:
    return participant_to_wire(
        participant.user_id, muted=participant.muted, on_hold=participant.state == ParticipantState.ON_HOLD
    )


class ParticipantOperations:
    def __init__(self, calls: RoomCalls, tasks: TaskSet, connection_of: Callable[[str], Connection | None]) -> None:
        self.calls = calls
        self._tasks = tasks
        self._connection_of = connection_of

    @staticmethod
    def listed(connection: Connection) -> list[dict[str, Any]]:
        return [wire(p) for p in connection.call.participants.values() if p.state in IN_CALL_STATES]

    def participant(self, connection: Connection, raw_id: str) -> dict[str, Any]:
        return wire(self.in_call(connection, raw_id))

    @staticmethod
    def in_call(connection: Connection, raw_id: str) -> Participant:
        return ParticipantOperations.in_call_of(connection.call, raw_id)

    @staticmethod
    def in_call_of(call: Call, raw_id: str) -> Participant:
        found = next((p for p in call.participants.values() if p.user_id == raw_id), None)
        if found is None:
            raise not_found(f"{raw_id[:64]} is not in the call.", "participant")
        return found

    async def add(self, connection: Connection, request: AddRequest) -> dict[str, Any]:
        if request.raw_id in connection.adds:
            raise ApiError(409, "Conflict", f"{request.raw_id} is already being added.", "participantToAdd")
        pending = PendingAdd(request.raw_id, request.operation_context)
        connection.adds[request.raw_id] = pending
        try:
            number = numbers.number_of(request.raw_id)
            if number is not None:
                await self._dial(connection, pending, number, request.invitation_seconds)
            else:
                await self._ring(connection, pending, request.invitation_seconds)
        except BaseException:
            if connection.adds.get(request.raw_id) is pending:
                del connection.adds[request.raw_id]
            raise
        return {
            "participant": participant_to_wire(request.raw_id, muted=False, on_hold=False),
            "operationContext": request.operation_context,
            "invitationId": pending.invitation_id,
        }

    async def _dial(self, connection: Connection, pending: PendingAdd, number: str, seconds: float | None) -> None:
        call = connection.call
        _phones_allowed(call)
        telephony = self.calls.telephony
        if telephony is None:
            raise CallRefused(Refusal.PSTN_UNAVAILABLE, "This server has no SIP trunk (VROOMS_SIP_TRUNK_URI).")
        phone = await telephony.dial(call, number, by=None, check=lambda: _phones_allowed(call))
        if seconds is not None:
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(
                seconds, lambda: self._tasks.spawn(self.calls.leave(phone, LeaveReason.NO_ANSWER))
            )

    async def _ring(self, connection: Connection, pending: PendingAdd, seconds: float | None) -> None:
        call = connection.call
        inviter = {"participantId": None, "userId": AUTOMATION_USER, "displayName": "Call Automation"}
        try:
            await self.calls.ring(call, pending.raw_id, inviter, connection, check=lambda: None)
        except CallRefused as refused:
            if refused.code != Refusal.INVITEE_NOT_CONNECTED:
                raise
            connection.add_finished(pending, results.NOT_CONNECTED)  # ACS: accepted, then failed
            return

        def timed_out() -> None:
            if self.calls.stop_ringing(call, pending.raw_id) or pending.participant_id is None:
                connection.add_finished(pending, results.TIMED_OUT)

        pending.timer = asyncio.get_running_loop().call_later(seconds or _DEFAULT_INVITATION_SECONDS, timed_out)

    async def cancel_add(self, connection: Connection, request: CancelAddRequest) -> None:
        pending = next((p for p in connection.adds.values() if p.invitation_id == request.invitation_id), None)
        if pending is None:
            connection.emit(
                EventType.CANCEL_ADD_PARTICIPANT_FAILED,
                request.operation_context,
                invitationId=request.invitation_id,
                resultInformation=results.NOT_PENDING.wire(),
            )
            return
        del connection.adds[pending.raw_id]  # withdrawn: no AddParticipantFailed follows
        if pending.timer is not None:
            pending.timer.cancel()
        self.calls.stop_ringing(connection.call, pending.raw_id)
        phone = connection.call.participants.get(pending.participant_id or "")
        if phone is not None and phone.phone_number is not None:
            await self.calls.leave(phone, LeaveReason.REMOVED_BY_SERVER)
        connection.emit(
            EventType.CANCEL_ADD_PARTICIPANT_SUCCEEDED,
            request.operation_context,
            invitationId=request.invitation_id,
            resultInformation=results.CANCELLED.wire(),
        )

    async def remove(self, connection: Connection, request: TargetRequest) -> None:
        target = self.in_call(connection, request.raw_id)
        await self.calls.leave(target, LeaveReason.REMOVED_BY_SERVER)
        connection.emit(
            EventType.REMOVE_PARTICIPANT_SUCCEEDED,
            request.operation_context,
            participant=participant_to_wire(request.raw_id, muted=False, on_hold=False)["identifier"],
            resultInformation=results.REMOVED.wire(),
        )

    async def mute(self, connection: Connection, request: TargetRequest) -> None:
        await self.calls.silence(self.in_call(connection, request.raw_id), by=AUTOMATION_USER)

    async def hold(self, connection: Connection, request: TargetRequest, *, on_hold: bool) -> None:
        await self.calls.media.set_on_hold(self.in_call(connection, request.raw_id), on_hold)

    async def move(self, connection: Connection, request: MoveRequest) -> dict[str, Any]:
        """``moveHere``: phone participants of another call (an answered caller's) into this one."""
        source = self._source_call(request.from_call)
        phones = [self.in_call_of(source, raw) for raw in request.raw_ids]
        moved = []
        for phone in phones:
            if phone.phone_number is None:
                raise bad_argument("Only phone participants can be moved between calls.", "targetParticipants")
            arrived = await telephony_of(self.calls).move(phone, connection.call)
            moved.append(wire(arrived))
            connection.emit(
                EventType.MOVE_PARTICIPANT_SUCCEEDED,
                request.operation_context,
                participant=moved[-1]["identifier"],
                fromCall=request.from_call,
                resultInformation=results.OK.wire(),
            )
        return {"participants": moved, "operationContext": request.operation_context, "fromCall": request.from_call}

    def _source_call(self, from_call: str) -> Call:
        """``fromCall``: the other call's connection id (as the SDK documents it) or its serverCallId."""
        connection = self._connection_of(from_call)
        if connection is not None:
            return connection.call
        found = self.calls.find_call(from_call)
        if found is None:
            raise not_found(f"No call {from_call[:64]} to move participants from.", "fromCall")
        return found
