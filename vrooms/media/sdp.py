"""SDP offers from clients, parsed and rebuilt before Janus sees them (RFC 8866, RFC 3264).

Clients are not trusted: what reaches Janus is built from the parsed form, never
patched line by line. Two rules matter for permissions:

- Direction (RFC 3264 section 5.1, RFC 8866 section 6.7): a media section's direction
  is its own ``a=sendrecv|sendonly|recvonly|inactive``, else the session-level one,
  else ``sendrecv``. Attribute names are compared case-insensitively and trimmed,
  because Janus's parser is lenient too: an offer it would read as sending must be
  read as sending here.
- Shape: an audio offer carries audio sections only, a camera or screen publish exactly
  one video section. Anything else is refused, so a publish cannot smuggle audio past
  the mixer's mute, nor one feed appear as two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SENDING = ("sendrecv", "sendonly")
_MAX_SECTIONS = 8


class SdpError(ValueError):
    """The offer is not an SDP this server accepts; the message says why."""


@dataclass
class MediaSection:
    """One ``m=`` line and the lines that belong to it (RFC 8866 section 5.14)."""

    kind: str
    port: int
    lines: list[str] = field(default_factory=list)
    m_line: str = ""

    def attributes(self) -> list[tuple[str, str]]:
        return _attributes(self.lines)

    def attribute(self, name: str) -> str | None:
        return next((value for key, value in self.attributes() if key == name), None)

    @property
    def mid(self) -> str | None:
        return self.attribute("mid")

    @property
    def rejected(self) -> bool:
        # Port 0 rejects a section unless it is bundle-only (RFC 8843 section 6).
        return self.port == 0 and self.attribute("bundle-only") is None


@dataclass
class SessionDescription:
    session: list[str]
    media: list[MediaSection]

    def direction(self, section: MediaSection) -> str:
        own = _direction(section.lines)
        return own or _direction(self.session) or "sendrecv"

    def active(self) -> list[MediaSection]:
        return [section for section in self.media if not section.rejected]

    def serialize(self) -> str:
        lines = list(self.session)
        for section in self.media:
            lines.append(section.m_line)
            lines.extend(section.lines)
        return "\r\n".join(lines) + "\r\n"


def _attributes(lines: list[str]) -> list[tuple[str, str]]:
    result = []
    for line in lines:
        if line.startswith("a="):
            name, _, value = line[2:].partition(":")
            result.append((name.strip().lower(), value.strip()))
    return result


def _direction(lines: list[str]) -> str | None:
    found = [name for name, _ in _attributes(lines) if name in DIRECTIONS]
    # Several directions in one section are contradictory; the most permissive counts.
    for candidate in DIRECTIONS:
        if candidate in found:
            return candidate
    return None


def _without_direction(lines: list[str]) -> list[str]:
    return [line for line in lines if not (line.startswith("a=") and _attributes([line])[0][0] in DIRECTIONS)]


def parse(text: str) -> SessionDescription:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("An SDP must start with v=0.")
    session: list[str] = []
    media: list[MediaSection] = []
    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"Not an SDP line: {line[:40]!r}.")
        if line.startswith("m="):
            media.append(_media_line(line))
            if len(media) > _MAX_SECTIONS:
                raise SdpError(f"At most {_MAX_SECTIONS} media sections are accepted.")
        elif media:
            media[-1].lines.append(line)
        else:
            session.append(line)
    return SessionDescription(session, media)


def _media_line(line: str) -> MediaSection:
    parts = line[2:].split()
    if len(parts) < 4 or not parts[1].split("/")[0].isascii() or not parts[1].split("/")[0].isdigit():
        raise SdpError(f"Malformed m= line: {line[:40]!r}.")
    return MediaSection(kind=parts[0].lower(), port=int(parts[1].split("/")[0]), m_line=line)


def _set_direction(section: MediaSection, direction: str) -> None:
    section.lines = [*_without_direction(section.lines), f"a={direction}"]


def _receive_only(description: SessionDescription) -> None:
    for section in description.media:
        receives = description.direction(section) in ("sendrecv", "recvonly")
        _set_direction(section, "recvonly" if receives else "inactive")
    description.session = _without_direction(description.session)


def only_receive(offer_sdp: str) -> str:
    """The offer with no section sending (``sendrecv`` → ``recvonly``, ``sendonly`` → ``inactive``).

    Used for participants whose role may not send: Janus then answers without
    accepting any media from them, whatever their client put in the offer.
    """
    description = parse(offer_sdp)
    _receive_only(description)
    return description.serialize()


def audio_offer(offer_sdp: str, *, may_send: bool) -> str:
    """An offer for the mix: audio sections only; made receive-only without the right to send."""
    description = parse(offer_sdp)
    active = description.active()
    if len(active) != 1 or active[0].kind != "audio":
        raise SdpError("An audio offer must have exactly one audio section and nothing else.")
    if not may_send:
        _receive_only(description)
    return description.serialize()


@dataclass(frozen=True)
class VideoOffer:
    sdp: str
    mid: str


def video_publish(offer_sdp: str) -> VideoOffer:
    """A camera or screen publish: exactly one video section, sent only, no audio.

    Returns the rebuilt offer and the section's ``mid``, by which subscribers then
    take exactly that stream of the feed and nothing else.
    """
    description = parse(offer_sdp)
    active = description.active()
    if len(active) != 1 or active[0].kind != "video" or len(description.media) != 1:
        raise SdpError("A camera or screen publish must have exactly one video section and nothing else.")
    section = active[0]
    if section.mid is None:
        raise SdpError("The video section needs an a=mid attribute.")
    if description.direction(section) not in _SENDING:
        raise SdpError("The video section of a publish must send (a=sendonly).")
    _set_direction(section, "sendonly")
    description.session = _without_direction(description.session)
    return VideoOffer(description.serialize(), section.mid)
