"""Phone numbers and the dial-out rules on them (pure; no SIP).

Numbers are E.164 (ITU-T E.164: a ``+``, then at most 15 digits; 7 is the shortest
number any plan assigns to a subscriber). ACS writes a phone participant's raw id
as ``4:`` followed by the number.
"""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
PHONE_RAW_ID_PREFIX = "4:"
# RFC 4733 §3.2 events 0-15; rtpengine reports and takes them by number.
DTMF_TONES = "0123456789*#ABCD"


class InvalidNumber(ValueError):
    """Not an E.164 number; the message names the field and what is expected."""


def e164(value: object, field: str = "phoneNumber") -> str:
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise InvalidNumber(f"{field} must be an E.164 number: '+' and 7 to 15 digits, e.g. +15551234567.")
    return value


def raw_id(number: str) -> str:
    return PHONE_RAW_ID_PREFIX + number


def number_of(raw: str) -> str | None:
    """The number behind an ACS raw id ``4:+1555...``, or None for any other kind of id."""
    return raw[len(PHONE_RAW_ID_PREFIX) :] if raw.startswith(PHONE_RAW_ID_PREFIX) else None


def allowed(number: str, prefixes: tuple[str, ...]) -> bool:
    """The allow/deny list: ``+44`` allows, ``!+44900`` denies; the longest matching prefix decides
    (a deny beats an allow of the same prefix).

    With no allowing entry every number is allowed (unless denied).
    """
    best, verdict = -1, not any(not p.startswith("!") for p in prefixes)
    for entry in prefixes:
        deny = entry.startswith("!")
        prefix = entry[1:] if deny else entry
        if number.startswith(prefix) and (len(prefix) > best or (len(prefix) == best and deny)):
            best, verdict = len(prefix), not deny
    return verdict


def dtmf_tones(value: object, field: str = "tones") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 32 or any(t not in DTMF_TONES for t in value.upper()):
        raise InvalidNumber(f"{field} must be 1 to 32 DTMF tones from {DTMF_TONES}.")
    return value.upper()
