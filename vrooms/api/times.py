"""RFC 3339 timestamps on the wire, integer microseconds (UTC) inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vrooms.api.bodies import json_type
from vrooms.errors import bad_argument

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def format_rfc3339(micros: int) -> str:
    """``2030-01-01T12:00:00Z``, with a fraction only when there is one."""
    moment = from_micros(micros)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_rfc3339(value: object, target: str) -> int:
    """Parse a client timestamp; one without an offset is read as UTC."""
    if not isinstance(value, str):
        raise bad_argument(f"'{target}' must be an RFC 3339 date-time string, not {json_type(value)}.", target)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_argument(
            f"'{target}' is not an RFC 3339 date-time (got '{value}'); use e.g. 2030-01-01T12:00:00Z.",
            target,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_micros(moment)


def now_micros() -> int:
    return to_micros(datetime.now(UTC))
