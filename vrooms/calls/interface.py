"""What the call host's other domains use of its calls: one interface, ``RoomCalls``.

Telephony (``pstn``), Call Automation (``automation``) and recording (``recording``) act on
the calls the call service holds: they find a call, seat or take out a participant, end a
call, open an audio feed, write events. They do it through these members only (``CallService``
implements them), never through the service's own dictionaries and fields, so the call
service can change how it keeps its calls without touching them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from vrooms.auth.roles import Role
from vrooms.calls.call import Call, Check, Listener, Participant, Telephony
from vrooms.calls.models import EndReason, LeaveReason, ParticipantState
from vrooms.calls.own_media import OwnMedia
from vrooms.calls.phones import PhoneLegs
from vrooms.media.types import MediaEvent, MediaPlane
from vrooms.rooms.models import Room
from vrooms.store.database import Database


class RoomCalls(Protocol):
    @property
    def database(self) -> Database:
        """Where calls, events and callbacks are written (the call host's one database)."""

    @property
    def node(self) -> str:
        """This node's name in a cluster ("" on a single node)."""

    @property
    def clock(self) -> Callable[[], int]:
        """Microseconds since the epoch (a test may stop time)."""

    @property
    def events_written(self) -> Callable[[], None]:
        """Tell the dispatcher that events an app waits on were written (it sends them at once)."""

    @property
    def telephony(self) -> Telephony | None:
        """Phone legs, when a SIP trunk is configured."""

    @property
    def phones(self) -> PhoneLegs:
        """Seating phone legs in calls (admission, audio, lobbies)."""

    @property
    def media(self) -> OwnMedia:
        """A participant's own media state (hold, mute) brought to the media plane."""

    @property
    def plane(self) -> MediaPlane | None:
        """The media plane while it is up (None while Janus restarts)."""

    def media_plane(self) -> MediaPlane:
        """The media plane, or a refusal a client can retry."""

    async def ring(self, call: Call, user_id: str, inviter: dict[str, Any], listener: Listener, *, check: Check) -> int:
        """Ring the user's idle devices (here and on other nodes); ``listener`` hears a decline."""

    def stop_ringing(self, call: Call, user_id: str) -> bool:
        """Withdraw an invitation; whether there was one."""

    async def silence(self, target: Participant, *, by: str) -> None:
        """Mute someone in the mix (everyone is told who did)."""

    async def isolate(self, call: Call, participant_id: str, slot: int | None) -> None:
        """Put the participant's audio alone on an isolation slot (None: back to only the mix)."""

    def live_call(self, room_id: str) -> Call | None:
        """The room's call, if one runs here."""

    def find_call(self, call_id: str) -> Call | None:
        """A call running here by its id (``serverCallId``), lobbies of answered callers included."""

    async def call_of(self, room: Room, user_id: str, role: Role) -> Call: ...

    async def leave(
        self, participant: Participant, reason: LeaveReason, *, by: str | None = None, check: Check | None = None
    ) -> None: ...

    async def end_call(
        self, call: Call, reason: EndReason, *, by: str | None = None, check: Check | None = None
    ) -> None: ...

    def set_state(self, participant: Participant, state: ParticipantState) -> None: ...

    def on_audio_event(self, participant: Participant, event: MediaEvent) -> None: ...

    def audio_feed(self, call: Call, audience: list[Participant]) -> AbstractAsyncContextManager[tuple[str, int]]:
        """Audio only ``audience`` hears while the block runs."""
