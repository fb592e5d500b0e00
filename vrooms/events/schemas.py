"""Wire format of the event-subscription API (a vrooms extension; ACS manages these through ARM)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from vrooms.api.times import format_rfc3339
from vrooms.errors import bad_argument
from vrooms.events.models import EventSchema, NewSubscription, Subscription

VERSIONS = ("2026-11-25",)
_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}\Z")  # Event Grid's rule for subscription names
_FIELDS = {
    "endpointUrl",
    "eventDeliverySchema",
    "includedEventTypes",
    "subjectBeginsWith",
    "subjectEndsWith",
    "secret",
    "maxEventsPerBatch",
}


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise bad_argument("A subscription name has 3 to 64 letters, digits and hyphens.", "name")
    return name


def _optional_text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise bad_argument(f"{field} must be a string of at most {limit} characters.", field)
    return value or None


def parse_subscription(name: str, body: dict[str, Any]) -> NewSubscription:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise bad_argument(f"Unknown field '{unknown[0]}'; known fields: {sorted(_FIELDS)}.", unknown[0])
    endpoint = body.get("endpointUrl")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_argument("endpointUrl must be an absolute http:// or https:// URL.", "endpointUrl")
    schema = body.get("eventDeliverySchema", EventSchema.EVENT_GRID)
    if schema not in tuple(EventSchema):
        raise bad_argument(
            f"eventDeliverySchema must be one of {[str(s) for s in EventSchema]}.", "eventDeliverySchema"
        )
    types = body.get("includedEventTypes")
    if types is not None and (
        not isinstance(types, list) or not types or not all(isinstance(t, str) and t for t in types)
    ):
        raise bad_argument("includedEventTypes must be a non-empty list of event type names.", "includedEventTypes")
    batch = body.get("maxEventsPerBatch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 5000:
        raise bad_argument("maxEventsPerBatch must be an integer from 1 to 5000.", "maxEventsPerBatch")
    return NewSubscription(
        name=check_name(name),
        endpoint=str(endpoint),
        schema=str(schema),
        event_types=tuple(types) if types else None,
        subject_begins_with=_optional_text(body, "subjectBeginsWith", 512),
        subject_ends_with=_optional_text(body, "subjectEndsWith", 512),
        secret=_optional_text(body, "secret", 256),
        max_events_per_batch=batch,
    )


def subscription_to_wire(subscription: Subscription) -> dict[str, Any]:
    return {
        "name": subscription.name,
        "id": subscription.id,
        "endpointUrl": subscription.endpoint,
        "eventDeliverySchema": subscription.schema,
        "includedEventTypes": list(subscription.event_types) if subscription.event_types else None,
        "subjectBeginsWith": subscription.subject_begins_with,
        "subjectEndsWith": subscription.subject_ends_with,
        "hasSecret": subscription.secret is not None,
        "maxEventsPerBatch": subscription.max_events_per_batch,
        "createdAt": format_rfc3339(subscription.created_at),
    }


def dead_letter_to_wire(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``repository.dead_letters``."""
    return {
        "subscription": row["name"],
        "eventId": row["id"],
        "eventType": row["type"],
        "subject": row["subject"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "deadLetteredAt": format_rfc3339(row["updated_at"]),
    }
