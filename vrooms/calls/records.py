"""Call records and their events, each written in one transaction with the event it reports.

The call rules decide; this module writes what they decided: a call started or
ended, a participation began or ended, each with its outbox event (``events``), so
a crash can never separate a record from its event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vrooms.calls import repository
from vrooms.calls.call import Call, Participant
from vrooms.calls.models import EndReason, LeaveReason
from vrooms.events import payloads
from vrooms.events import repository as outbox
from vrooms.events.models import Event
from vrooms.store.database import Connection, Database

# A room's next call takes its captions over from one whose call host crashed this recently
# (the people in it come back within seconds; a call much later starts with captions off).
_RESUME_CAPTIONS_SECONDS = 300


def _participation_event(
    call: dict[str, Any], participation: dict[str, Any], *, added: bool, reason: str | None
) -> Event:
    return payloads.participant_event(
        added,
        room_id=call["room_id"],
        call_id=call["id"],
        started_by=call["started_by"],
        started_by_role=call["started_by_role"],
        user=participation["raw_id"],
        role=participation["role_at_join"],
        display_name=participation["display_name"],
        participant_id=participation["id"],
        user_agent=participation["user_agent"],
        reason=reason,
    )


def _call_row(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "room_id": call.room_id,
        "started_by": call.started_by,
        "started_by_role": call.started_by_role,
        "started_at": call.started_at,
    }


def _participation_row(participant: Participant) -> dict[str, Any]:
    return {
        "id": participant.id,
        "raw_id": participant.user_id,
        "role_at_join": str(participant.role),
        "display_name": participant.display_name,
        "user_agent": participant.peer.user_agent[:256],
    }


class CallRecords:
    def __init__(self, database: Database, clock: Callable[[], int], node: str = "") -> None:
        self.database = database
        self.clock = clock
        # This node's name, on the calls it holds (see ``adopt``).
        self.node = node

    async def call_started(self, call: Call) -> None:
        async with self.database.write() as conn:
            await repository.insert_call(
                conn,
                call_id=call.id,
                room_id=call.room_id,
                started_at=call.started_at,
                by=call.started_by,
                role=call.started_by_role,
                node=self.node,
            )
            await outbox.append(
                conn, payloads.call_started(call.room_id, call.id, call.started_by, call.started_by_role)
            )

    async def joined(self, call: Call, participant: Participant) -> None:
        if call.lobby:  # not a room's call: nothing to record until the caller is moved into one
            return
        row = _participation_row(participant)
        async with self.database.write() as conn:
            await repository.insert_participation(
                conn,
                id=row["id"],
                call_id=call.id,
                raw_id=row["raw_id"],
                display_name=row["display_name"],
                role_at_join=row["role_at_join"],
                user_agent=row["user_agent"],
                joined_at=participant.joined_at,
            )
            await outbox.append(conn, _participation_event(_call_row(call), row, added=True, reason=None))

    async def left(self, call: Call, participant: Participant, reason: LeaveReason, by: str | None) -> None:
        if call.lobby:
            return
        async with self.database.write() as conn:
            await self._end_participation(conn, _call_row(call), _participation_row(participant), reason, by)

    async def _end_participation(
        self, conn: Connection, call: dict[str, Any], row: dict[str, Any], reason: LeaveReason, by: str | None
    ) -> None:
        await repository.end_participation(conn, row["id"], left_at=self.clock(), reason=str(reason), removed_by=by)
        await outbox.append(conn, _participation_event(call, row, added=False, reason=str(reason)))

    async def captions_changed(self, call: Call) -> None:
        """Kept with the call: a node that adopts it, or the room's next call after a crash, goes on."""
        if call.lobby:
            return
        language = str(call.captions["language"]) if call.captions["active"] else None
        async with self.database.write() as conn:
            await repository.set_captions(conn, call.id, language)

    async def captions_to_resume(self, room_id: str) -> str | None:
        """The captions language of the room's last call if its call host crashed a moment ago."""
        since = self.clock() - _RESUME_CAPTIONS_SECONDS * 1_000_000
        async with self.database.read() as conn:
            return await repository.captions_after_failure(
                conn, room_id, reason=str(EndReason.SERVER_FAILURE), since=since
            )

    async def call_ended(self, call: Call, reason: EndReason, by: str | None) -> None:
        if call.lobby:
            return
        async with self.database.write() as conn:
            await self._end_call(conn, _call_row(call), reason, by)

    async def _end_call(self, conn: Connection, call: dict[str, Any], reason: EndReason, by: str | None) -> None:
        ended_at = self.clock()
        await repository.end_call(conn, call["id"], ended_at=ended_at, reason=str(reason), ended_by=by)
        await outbox.append(
            conn,
            payloads.call_ended(
                call["room_id"],
                call["id"],
                started_by=call["started_by"],
                started_by_role=call["started_by_role"],
                reason=str(reason),
                ended_by=by,
                duration_seconds=(ended_at - call["started_at"]) / 1e6,
            ),
        )

    async def adopt(self, room_id: str) -> dict[str, Any] | None:
        """The room's open call that a lost node held, now this node's (same id, same start); None if none.

        Its participations end (ConnectionLost: their connections went with the node); the
        participants' clients join again and start new ones in the same call. Called once this
        node holds the room's lease, so no live node holds the call.
        """
        async with self.database.write() as conn:
            for call in await repository.open_calls(conn, room_id=room_id):
                if not await repository.take_over_call(conn, call["id"], from_node=call["node"], to_node=self.node):
                    continue
                for row in call["participants"]:
                    await self._end_participation(conn, call, row, LeaveReason.CONNECTION_LOST, None)
                return call
        return None

    async def close_abandoned(self, nodes: list[str | None] | None = None) -> int:
        """End the calls that these nodes (None: any) left open, with records and events.

        At start-up, a node's own (a killed call host's). Their participants lost their
        signaling connection when it died; this makes the records and the event stream
        (CallParticipantRemoved, CallEnded) whole again.
        """
        return await self._close_open(lambda _call: True, nodes)

    async def close_orphans(self, alive: set[str], placed_rooms: set[str]) -> int:
        """In a cluster: end the calls of lost nodes that no node adopted (their rooms' leases expired)."""
        return await self._close_open(lambda call: call["node"] not in alive and call["room_id"] not in placed_rooms)

    async def _close_open(self, which: Callable[[dict[str, Any]], bool], nodes: list[str | None] | None = None) -> int:
        async with self.database.write() as conn:
            abandoned = [call for call in await repository.open_calls(conn, nodes=nodes) if which(call)]
            for call in abandoned:
                for row in call["participants"]:
                    await self._end_participation(conn, call, row, LeaveReason.CONNECTION_LOST, None)
                await self._end_call(conn, call, EndReason.SERVER_FAILURE, None)
        return len(abandoned)
