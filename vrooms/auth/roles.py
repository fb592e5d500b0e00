"""The role table: what each room role may do, as data.

Roles are the ACS Rooms roles. The server (signaling) and the media plane both read
this one table; nothing else decides a permission. Collaborator exists only from
Rooms api-version 2025-03-13 on; it has the Attendee's powers.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PRESENTER = "Presenter"
    ATTENDEE = "Attendee"
    CONSUMER = "Consumer"
    COLLABORATOR = "Collaborator"


class Capability(StrEnum):
    SEND_AUDIO = "sendAudio"
    SEND_VIDEO = "sendVideo"
    SHARE_SCREEN = "shareScreen"
    RECEIVE_MEDIA = "receiveMedia"
    START_CAPTIONS = "startCaptions"
    CHANGE_CAPTION_LANGUAGE = "changeCaptionLanguage"
    MUTE_OTHERS = "muteOthers"
    REMOVE_PARTICIPANT = "removeParticipant"
    END_CALL_FOR_ALL = "endCallForAll"
    INVITE = "invite"
    PSTN_DIAL_OUT = "pstnDialOut"


_ATTENDEE = frozenset(
    {
        Capability.SEND_AUDIO,
        Capability.SEND_VIDEO,
        Capability.RECEIVE_MEDIA,
        Capability.START_CAPTIONS,
        Capability.CHANGE_CAPTION_LANGUAGE,
    }
)

ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.PRESENTER: frozenset(Capability),
    Role.ATTENDEE: _ATTENDEE,
    Role.COLLABORATOR: _ATTENDEE,
    Role.CONSUMER: frozenset({Capability.RECEIVE_MEDIA, Capability.START_CAPTIONS}),
}


def role_can(role: Role, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES[role]
