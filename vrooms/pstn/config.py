"""The telephone settings, read once into what the SIP stack and the dial-out rules need.

Errors name the setting and say what to write instead, because they surface when
``vrooms serve`` starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vrooms.config import Settings
from vrooms.pstn.numbers import InvalidNumber, e164
from vrooms.pstn.sip import TrunkAddress

_SIP_URI = re.compile(r"sips?:(?:[^@;]+@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:;\s]+)(?::(?P<port>\d{1,5}))?(?P<params>;.*)?")


class TelephonyConfigError(ValueError):
    """A telephone setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class DialInRule:
    room_id: str
    pin: str


@dataclass(frozen=True)
class Telephony:
    trunk: TrunkAddress
    allow_prefixes: tuple[str, ...]
    no_answer_seconds: float
    max_legs_per_room: int
    max_incoming: int
    max_incoming_per_number: int
    dial_in: dict[str, DialInRule] = field(default_factory=dict)


def _trunk_host_port(uri: str) -> tuple[str, int]:
    match = _SIP_URI.fullmatch(uri.strip())
    if match is None:
        raise TelephonyConfigError(
            f"VROOMS_SIP_TRUNK_URI {uri!r} is not a SIP URI; write e.g. sip:203.0.113.5:5060;transport=udp."
        )
    params = dict(([*part.split("=", 1), ""])[:2] for part in (match["params"] or "").lower().split(";") if part)
    transport = params.get("transport", "udp")
    if uri.startswith("sips:") or transport != "udp":
        raise TelephonyConfigError(
            f"VROOMS_SIP_TRUNK_URI asks for {transport if transport != 'udp' else 'TLS'}: vrooms' SIP stack "
            "(sippy) speaks UDP only; use ;transport=udp (or a local proxy such as kamailio for TCP/TLS)."
        )
    return match["host"].strip("[]"), int(match["port"] or 5060)


def _dial_in(raw: dict[str, dict[str, str]]) -> dict[str, DialInRule]:
    rules = {}
    for number, rule in raw.items():
        try:
            e164(number, "VROOMS_SIP_DIALIN number")
        except InvalidNumber as exc:
            raise TelephonyConfigError(str(exc)) from None
        if not isinstance(rule, dict) or not rule.get("roomId") or not str(rule.get("pin", "")).isdigit():
            raise TelephonyConfigError(
                f'VROOMS_SIP_DIALIN for {number}: write {{"roomId": "<room id>", "pin": "<digits>"}}.'
            )
        rules[number] = DialInRule(room_id=str(rule["roomId"]), pin=str(rule["pin"]))
    return rules


def telephony(settings: Settings) -> Telephony | None:
    """The telephone configuration, or None when no trunk is configured (phone requests then say so)."""
    if not settings.sip_trunk_uri:
        return None
    host, port = _trunk_host_port(settings.sip_trunk_uri)
    caller_id = settings.sip_caller_id or settings.sip_trunk_username or ""
    try:
        e164(caller_id, "VROOMS_SIP_CALLER_ID")
    except InvalidNumber as exc:
        raise TelephonyConfigError(str(exc)) from None
    listen_host, listen_port = settings.sip_listen.rsplit(":", 1)
    trusted = settings.sip_trusted_sources or host
    password = settings.sip_trunk_password.get_secret_value() if settings.sip_trunk_password else None
    return Telephony(
        trunk=TrunkAddress(
            host=host,
            port=port,
            username=settings.sip_trunk_username,
            password=password,
            caller_id=caller_id,
            listen_host=listen_host,
            listen_port=int(listen_port),
            register=settings.sip_register,
            trusted_sources=frozenset(s.strip() for s in trusted.split(",") if s.strip()),
        ),
        allow_prefixes=tuple(p.strip() for p in settings.sip_allow_prefixes.split(",") if p.strip()),
        max_incoming=settings.sip_max_incoming_calls,
        max_incoming_per_number=settings.sip_max_incoming_calls_per_number,
        no_answer_seconds=settings.sip_no_answer_seconds,
        max_legs_per_room=settings.sip_max_phone_legs_per_room,
        dial_in=_dial_in(settings.sip_dialin),
    )
