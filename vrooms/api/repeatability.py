"""Repeatable requests (OASIS Repeatable Requests 1.0, as ACS applies them).

ACS's rules ("Repeatable requests" in the ACS REST docs): both headers or neither; a
malformed id or date is 400; a first-sent time outside the 5-minute tracking window
is 412; a repeat of a known id returns the first response again, unless its request
differs from the first, which is 400. Every answer says ``Repeatability-Result``.

A record is claimed at the start of the write transaction that does the work and
filled at its end, so the work and its record commit (or vanish) together: a
repeat can never execute twice, also across a crash or restart.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from sqlalchemy import delete, insert, select, update

from vrooms.api.times import to_micros
from vrooms.errors import ApiError, precondition_failed
from vrooms.store.database import Connection, rows_affected
from vrooms.store.tables import repeatable_requests

REQUEST_ID = "repeatability-request-id"
FIRST_SENT = "repeatability-first-sent"
RESULT = "Repeatability-Result"
_CLOCK_SKEW = 60 * 1_000_000


@dataclass(frozen=True)
class RepeatKey:
    request_id: str
    first_sent: int
    fingerprint: str


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def _rejected(error: ApiError) -> ApiError:
    error.headers[RESULT] = "rejected"
    return error


def parse(headers: dict[str, str], fingerprint_of: bytes, *, now: int, window_seconds: int) -> RepeatKey | None:
    """The request's repeatability key, or None when the client did not ask for it."""
    request_id = headers.get(REQUEST_ID)
    first_sent = headers.get(FIRST_SENT)
    if request_id is None and first_sent is None:
        return None
    if request_id is None:
        raise _rejected(
            ApiError(
                400,
                "BadRequest",
                "Repeatability-First-Sent requires Repeatability-Request-ID.",
                "Repeatability-Request-ID",
            )
        )
    try:
        uuid.UUID(request_id)
    except ValueError:
        raise _rejected(
            ApiError(400, "BadRequest", "Repeatability-Request-ID must be a GUID.", "Repeatability-Request-ID")
        ) from None
    if first_sent is None:
        raise _rejected(
            ApiError(
                400,
                "BadRequest",
                "Repeatability-Request-ID requires Repeatability-First-Sent.",
                "Repeatability-First-Sent",
            )
        )
    try:
        sent = to_micros(parsedate_to_datetime(first_sent))
    except (TypeError, ValueError):
        raise _rejected(
            ApiError(
                400,
                "BadRequest",
                "Repeatability-First-Sent must be an IMF-fixdate (RFC 7231) date.",
                "Repeatability-First-Sent",
            )
        ) from None
    if sent < now - window_seconds * 1_000_000 or sent > now + _CLOCK_SKEW:
        raise _rejected(
            precondition_failed(
                f"Repeatability-First-Sent is not within the {window_seconds // 60}-minute tracking window; "
                "check the client's clock, or send the request as a new one.",
                "Repeatability-First-Sent",
            )
        )
    return RepeatKey(request_id.lower(), sent, hashlib.sha256(fingerprint_of).hexdigest())


async def claim(conn: Connection, key: RepeatKey, now: int) -> StoredResponse | None:
    """Return the stored response of a repeat, or claim the id for this execution."""
    row = (
        await conn.execute(
            select(repeatable_requests.c.fingerprint, repeatable_requests.c.status, repeatable_requests.c.body).where(
                repeatable_requests.c.request_id == key.request_id
            )
        )
    ).first()
    if row is None:
        # On PostgreSQL a concurrent twin blocks on this row's unique key until we commit.
        await conn.execute(
            insert(repeatable_requests).values(
                request_id=key.request_id,
                first_sent=key.first_sent,
                fingerprint=key.fingerprint,
                status=0,
                body=b"",
                created_at=now,
            )
        )
        return None
    if row.fingerprint != key.fingerprint:
        raise _rejected(
            ApiError(
                400,
                "BadRequest",
                "This Repeatability-Request-ID was used for a different request.",
                "Repeatability-Request-ID",
            )
        )
    return StoredResponse(row.status, row.body)


async def complete(conn: Connection, key: RepeatKey, status: int, body: bytes) -> None:
    await conn.execute(
        update(repeatable_requests)
        .where(repeatable_requests.c.request_id == key.request_id)
        .values(status=status, body=body)
    )


async def purge(conn: Connection, older_than: int) -> int:
    result = await conn.execute(delete(repeatable_requests).where(repeatable_requests.c.created_at < older_than))
    return rows_affected(result)
