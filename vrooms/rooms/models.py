"""Room and roster values as the rules see them (no HTTP, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vrooms.auth.roles import Role


@dataclass(frozen=True)
class RoleCounts:
    presenters: int = 0
    attendees: int = 0
    consumers: int = 0
    collaborators: int = 0

    @property
    def total(self) -> int:
        return self.presenters + self.attendees + self.consumers + self.collaborators

    @classmethod
    def of(cls, roles: list[Role]) -> RoleCounts:
        return cls(
            presenters=roles.count(Role.PRESENTER),
            attendees=roles.count(Role.ATTENDEE),
            consumers=roles.count(Role.CONSUMER),
            collaborators=roles.count(Role.COLLABORATOR),
        )


@dataclass(frozen=True)
class Room:
    id: str
    seq: int
    created_at: int
    valid_from: int
    valid_until: int
    pstn_dial_out_enabled: bool
    counts: RoleCounts = field(default_factory=RoleCounts)


@dataclass(frozen=True)
class Participant:
    raw_id: str
    role: Role


@dataclass(frozen=True)
class NewRoom:
    valid_from: int | None
    valid_until: int | None
    pstn_dial_out_enabled: bool
    participants: dict[str, Role]


@dataclass(frozen=True)
class RoomChanges:
    """A PATCH: ``None`` means unchanged (the SDK always sends every field, as null)."""

    valid_from: int | None
    valid_until: int | None
    pstn_dial_out_enabled: bool | None


@dataclass(frozen=True)
class RosterChange:
    added: int
    updated: int
    removed: int
    room: Room
