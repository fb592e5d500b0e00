"""The ``resultInformation`` of callbacks: one registry of codes, SIP-style as ACS reports them.

ACS puts a SIP-like ``code`` (200 success, 4xx/6xx the callee's answer, 408 a timeout) and
a ``subCode`` in every callback; apps branch on the code. The sub-codes here are vrooms's
own, in a range of their own (7xxx), and the message says what happened in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from vrooms.calls.models import EndReason, LeaveReason


class Outcome(Enum):
    """How a DTMF recognition ended (``results`` maps each to its resultInformation)."""

    MAX_TONES = "maxTones"
    STOP_TONE = "stopTone"
    INITIAL_SILENCE = "initialSilence"
    INTER_TONE_SILENCE = "interToneSilence"


@dataclass(frozen=True)
class Result:
    code: int
    sub_code: int
    message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def wire(self) -> dict[str, Any]:
        return {"code": self.code, "subCode": self.sub_code, "message": self.message}


OK = Result(200, 0, "Action completed successfully.")
ADDED = Result(200, 0, "The participant joined the call.")
REMOVED = Result(200, 0, "The participant was removed from the call.")
HUNG_UP = Result(200, 0, "The application left the call.")
DECLINED = Result(603, 7001, "The invitee declined the call.")
TIMED_OUT = Result(408, 7002, "The invitee did not answer within invitationTimeoutInSeconds.")
NOT_CONNECTED = Result(480, 7003, "The invitee has no signed-in device to ring.")
CANCELLED = Result(487, 7004, "Adding the participant was cancelled.")
CALL_GONE = Result(410, 7005, "The call ended before the operation finished.")
NOT_PENDING = Result(404, 7006, "No add with this invitation id is in progress.")
TELEPHONY_FAILED = Result(500, 7007, "Sending the tones failed at the telephone relay.")
HOST_RESTARTED = Result(500, 7008, "The call host restarted; the call ended.")
RECORDING_FAILED = Result(
    500,
    7030,
    "The recording's files could not be made; its raw media are kept and it is tried again at the next start.",
)
STREAMING_STARTED = Result(200, 0, "Media streaming started.")
STREAMING_STOPPED = Result(200, 0, "Media streaming stopped.")
STREAMING_FAILED = Result(500, 7040, "Media streaming failed.")
TRANSCRIPTION_STARTED = Result(200, 0, "Transcription started.")
TRANSCRIPTION_STOPPED = Result(200, 0, "Transcription stopped.")
TRANSCRIPTION_UPDATED = Result(200, 0, "Transcription locale updated.")
# ACS's code for a transport URL it cannot stream to; the others are vrooms's own.
TRANSCRIPTION_SOCKET_FAILED = Result(400, 8581, "Transcription failed: the transportUrl WebSocket failed.")
TRANSCRIPTION_UNAVAILABLE = Result(500, 7041, "Transcription failed: the call's speech could not be recognized.")
PLAY_MEDIA_FAILED = Result(500, 7050, "The media server could not play the prompt; try again.")
MEDIA_OPERATION_FAILED = Result(500, 7051, "The operation failed on the server; try again.")
RECORDING_RECOVERED = Result(200, 7031, "The call host restarted; the recording was finished with what it had.")

# Media operations: the codes ACS documents for play and recognize (MediaEventReasonCode).
PLAYED = Result(200, 0, "Action completed successfully.")
MEDIA_CANCELLED = Result(400, 8508, "Action failed, the operation was canceled.")
FILE_INVALID = Result(400, 8535, "Action failed, file format is invalid.")
FILE_NOT_DOWNLOADED = Result(400, 8536, "Action failed, file could not be downloaded.")
RECOGNIZED = {
    Outcome.MAX_TONES: Result(200, 8531, "Action completed, max digits received."),
    Outcome.STOP_TONE: Result(200, 8514, "Action completed as stop tone was detected."),
    Outcome.INITIAL_SILENCE: Result(400, 8510, "Action failed, initial silence timeout reached."),
    Outcome.INTER_TONE_SILENCE: Result(400, 8532, "Action failed, inter-digit silence timeout reached."),
}

_LEAVE_RESULTS = {
    LeaveReason.BUSY: Result(486, 7010, "The phone is busy."),
    LeaveReason.NO_ANSWER: Result(408, 7011, "The phone did not answer."),
    LeaveReason.DECLINED: Result(603, 7012, "The call was declined."),
    LeaveReason.NUMBER_NOT_FOUND: Result(404, 7013, "The number does not exist."),
    LeaveReason.UNAVAILABLE: Result(480, 7014, "The phone is unavailable."),
    LeaveReason.CALL_FAILED: Result(500, 7015, "The carrier could not complete the call."),
    LeaveReason.TELEPHONY_FAILURE: Result(500, 7016, "The telephone relay failed."),
    LeaveReason.CONNECTION_LOST: Result(500, 7017, "The participant's connection was lost."),
}
_END_RESULTS = {
    EndReason.ENDED_BY_SERVER: Result(200, 7020, "The application terminated the call."),
    EndReason.ENDED_FOR_ALL: Result(200, 7021, "A Presenter ended the call for everyone."),
    EndReason.ALL_LEFT: Result(200, 7022, "Everyone left the call."),
    EndReason.ROOM_EXPIRED: Result(410, 7023, "The room's validity period ended."),
    EndReason.ROOM_DELETED: Result(410, 7024, "The room was deleted."),
    EndReason.MEDIA_FAILURE: Result(500, 7025, "The media server failed."),
    EndReason.SERVER_SHUTDOWN: Result(503, 7026, "The server is shutting down."),
}


def leave_result(reason: str) -> Result:
    """Why a participant being added left before it connected."""
    try:
        return _LEAVE_RESULTS.get(LeaveReason(reason), CANCELLED)
    except ValueError:
        return CANCELLED


def call_end_result(reason: str) -> Result:
    try:
        return _END_RESULTS.get(EndReason(reason), CALL_GONE)
    except ValueError:
        return CALL_GONE


def information(result: Result, message: str | None = None) -> dict[str, Any]:
    """A callback's ``resultInformation`` field, ``message`` appended to the result's own."""
    wire = result.wire()
    if message:
        wire["message"] = f"{wire['message']} {message}"
    return {"resultInformation": wire}
