"""Call and participant states and the reason codes clients see (no HTTP, no SQL).

State names are those of the ACS Calling SDK (``CallState``, ``ParticipantState``)
so that apps written for ACS map them one to one. (The call's own state is the client's
view of its connection; the SDKs keep it.)
"""

from __future__ import annotations

from enum import StrEnum


class ParticipantState(StrEnum):
    IDLE = "Idle"
    CONNECTING = "Connecting"
    # A phone leg: the far end rings (180), or plays early media (183 with SDP).
    RINGING = "Ringing"
    EARLY_MEDIA = "EarlyMedia"
    CONNECTED = "Connected"
    ON_HOLD = "OnHold"
    DISCONNECTING = "Disconnecting"
    DISCONNECTED = "Disconnected"


class Refusal(StrEnum):
    """Why a connection, a join or a request was refused: the one registry of signaling error codes."""

    TOKEN_INVALID = "TokenInvalid"
    TOKEN_EXPIRED = "TokenExpired"
    TOKEN_REVOKED = "TokenRevoked"
    IDENTITY_DELETED = "IdentityDeleted"
    SCOPE_MISSING = "TokenScopeMissing"
    ROOM_NOT_FOUND = "RoomNotFound"
    NOT_ON_ROSTER = "NotOnRoster"
    ROOM_NOT_YET_OPEN = "RoomNotYetOpen"
    ROOM_EXPIRED = "RoomExpired"
    ALREADY_IN_CALL = "AlreadyInCall"
    MEDIA_UNAVAILABLE = "MediaUnavailable"
    # Refusals of requests inside a connection or a call.
    NOT_ALLOWED = "NotAllowed"
    NOT_IN_CALL = "NotInCall"
    PARTICIPANT_NOT_FOUND = "ParticipantNotFound"
    INVITEE_NOT_CONNECTED = "InviteeNotConnected"
    INVITATION_NOT_FOUND = "InvitationNotFound"
    BAD_MESSAGE = "BadMessage"
    MEDIA_ERROR = "MediaError"
    INTERNAL_ERROR = "InternalError"
    # More requests than one connection may send (see protocol.RequestBudget); retry later.
    RATE_LIMITED = "RateLimited"
    # Telephone legs: the room forbids them, no trunk is configured, the number is not allowed
    # by the dial-out list, or the room has as many phone legs as it may.
    PSTN_DIAL_OUT_DISABLED = "PstnDialOutDisabled"
    PSTN_UNAVAILABLE = "PstnUnavailable"
    NUMBER_NOT_ALLOWED = "PhoneNumberNotAllowed"
    PHONE_LEG_LIMIT = "PhoneLegLimitReached"
    # Call Automation's answer/reject/redirect named a call that is not ringing (any more).
    INCOMING_CALL_NOT_FOUND = "IncomingCallNotFound"
    # The call host is not running (answered by a REST worker's relay).
    CALLS_UNAVAILABLE = "CallsUnavailable"
    # Several nodes: another node holds the room's call (the relay sends the join there), or no
    # node can take it now; either way the client tries again.
    ROOM_ELSEWHERE = "RoomOnAnotherNode"
    # Captions: a language without an installed model (the message lists those there are), or the
    # speakers' audio apart is taken (an unmixed media stream runs in the call).
    CAPTIONS_LANGUAGE = "CaptionsLanguageNotSupported"
    CAPTIONS_UNAVAILABLE = "CaptionsUnavailable"


class CallRefused(Exception):
    """A refusal with its code; ``details`` are fields a client needs to say more (the opening time)."""

    def __init__(self, code: Refusal | str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details


class EndReason(StrEnum):
    """Why a call ended (for everyone)."""

    ALL_LEFT = "AllParticipantsLeft"
    ENDED_FOR_ALL = "EndedForAll"
    # A Call Automation app terminated the call.
    ENDED_BY_SERVER = "EndedByServer"
    ROOM_DELETED = "RoomDeleted"
    ROOM_EXPIRED = "RoomExpired"
    # The room's validFrom moved into the future while the call ran.
    ROOM_NOT_YET_OPEN = "RoomNotYetOpen"
    MEDIA_FAILURE = "MediaServerFailure"
    SERVER_SHUTDOWN = "ServerShutdown"
    # The call host stopped without ending its calls (killed, crashed); found at its next start.
    SERVER_FAILURE = "ServerFailure"
    # Not an end: the call goes on on another node (this one drains, or lost the room's lease).
    # Clients join again at once and are back in the same call.
    MOVED = "CallMoved"


class LeaveReason(StrEnum):
    """Why one participant left a call."""

    LEFT = "Left"
    REMOVED = "RemovedByPresenter"
    # Removed by a Call Automation app (participants:remove).
    REMOVED_BY_SERVER = "RemovedByServer"
    REMOVED_FROM_ROSTER = "RemovedFromRoster"
    CONNECTION_LOST = "ConnectionLost"
    CALL_ENDED = "CallEnded"
    # The user's tokens were revoked, or the identity deleted, during the call.
    TOKEN_REVOKED = "TokenRevoked"
    IDENTITY_DELETED = "IdentityDeleted"
    # Phone legs (SIP final responses and BYE; pstn.leg maps them).
    HUNG_UP = "HungUp"
    BUSY = "Busy"
    NO_ANSWER = "NoAnswer"
    DECLINED = "Declined"
    NUMBER_NOT_FOUND = "NumberNotFound"
    UNAVAILABLE = "Unavailable"
    CALL_FAILED = "CallFailed"
    # The relay between the trunk and the room (rtpengine) failed.
    TELEPHONY_FAILURE = "TelephonyMediaFailure"
    WRONG_PIN = "WrongPin"
    # Call Automation moved the participant into another call (a caller, into a room's call).
    MOVED = "MovedToAnotherCall"
    # The call moved to another node (see EndReason.MOVED); the client joins it again there.
    CALL_MOVED = "CallMoved"


class MediaSource(StrEnum):
    CAMERA = "camera"
    SCREEN = "screen"


# Scopes that allow joining a call (ACS: "voip" for calling, "voip.join" join-only).
CALL_SCOPES = frozenset({"voip", "voip.join"})
