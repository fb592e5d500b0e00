"""RFC 3339 timestamps on the wire, integer microseconds (UTC) inside."""

from __future__ import annotations

import re
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


# RFC 3339 section 5.6 ``date-time`` (ASCII digits only; ``fromisoformat`` alone would take
# ISO 8601 forms such as ``2027-W10-1`` or ``20270308T0710``). A missing offset is
# tolerated and read as UTC, as the ACS service does.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z"
)


def parse_rfc3339(value: object, target: str) -> int:
    """Parse a client timestamp; one without an offset is read as UTC."""
    if not isinstance(value, str):
        raise bad_argument(f"'{target}' must be an RFC 3339 date-time string, not {json_type(value)}.", target)
    refusal = bad_argument(
        f"'{target}' is not an RFC 3339 date-time (got '{value[:40]}'); use e.g. 2030-01-01T12:00:00Z.", target
    )
    match = _DATE_TIME.match(value)
    if match is None:
        raise refusal
    text = value
    if match.group(1) and len(match.group(1)) > 7:  # nanoseconds: Python keeps microseconds
        text = value[: match.start(1) + 7] + value[match.end(1) :]
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # in the shape but not a real moment: month 13, 25:00, ...
        raise refusal from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_micros(moment)


def now_micros() -> int:
    return to_micros(datetime.now(UTC))
