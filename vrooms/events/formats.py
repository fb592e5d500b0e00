"""What goes on the wire to a webhook: Event Grid schema or CloudEvents 1.0, and the handshakes.

Event Grid schema: a JSON array of events, ``aeg-event-type: Notification``; the
subscription validation event expects ``{"validationResponse": code}`` back.
CloudEvents 1.0 (JSON format, HTTP binding): one event in structured mode, several in
batch mode; the webhook's abuse-protection handshake is an ``OPTIONS`` request with
``WebHook-Request-Origin`` (CloudEvents "HTTP 1.1 Web Hooks" spec, section 4).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import orjson

from vrooms.api.times import format_rfc3339, now_micros
from vrooms.auth.tokens import load_or_create_resource_id
from vrooms.config import Settings
from vrooms.events.models import CALLBACK_SCHEMA, EventSchema, StoredEvent

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
# Handlers written for Azure compare the origin with Event Grid's own.
REQUEST_ORIGIN = "eventgrid.azure.net"
SIGNATURE_HEADER = "vrooms-signature"


def default_topic(settings: Settings) -> str:
    """The ``topic`` / ``source`` of our events, shaped like an ACS resource's."""
    resource = load_or_create_resource_id(settings.data_dir)
    return settings.event_topic or f"/vrooms/providers/Microsoft.Communication/communicationServices/{resource}"


def event_grid(event: StoredEvent, topic: str) -> dict[str, Any]:
    return {
        "id": event.id,
        "topic": topic,
        "subject": event.subject,
        "data": event.data,
        "eventType": event.type,
        "eventTime": format_rfc3339(event.time),
        "metadataVersion": "1",
        "dataVersion": "1.0",
    }


def cloud_event(event: StoredEvent, source: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": event.type,
        "subject": event.subject,
        "time": format_rfc3339(event.time),
        "datacontenttype": "application/json",
        "data": event.data,
    }


def notification(schema: str, batch: list[StoredEvent], topic: str) -> tuple[bytes, dict[str, str]]:
    """The request body and headers that deliver ``batch`` (in order) to one subscription."""
    if schema == CALLBACK_SCHEMA:  # as ACS posts callbacks: an array, each event its connection's source
        return orjson.dumps([cloud_event(event, event.subject) for event in batch]), {
            "content-type": "application/json"
        }
    if schema == EventSchema.EVENT_GRID:
        body = orjson.dumps([event_grid(event, topic) for event in batch])
        return body, {"content-type": "application/json", "aeg-event-type": "Notification"}
    if len(batch) == 1:
        return orjson.dumps(cloud_event(batch[0], topic)), {
            "content-type": "application/cloudevents+json; charset=utf-8"
        }
    body = orjson.dumps([cloud_event(event, topic) for event in batch])
    return body, {"content-type": "application/cloudevents-batch+json; charset=utf-8"}


def validation_request(topic: str) -> tuple[str, bytes]:
    """A SubscriptionValidationEvent: (the code the endpoint must echo, the body)."""
    code = str(uuid.uuid4())
    event = {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": "",
        "data": {"validationCode": code, "validationUrl": None},
        "eventType": VALIDATION_EVENT_TYPE,
        "eventTime": format_rfc3339(now_micros()),
        "metadataVersion": "1",
        "dataVersion": "2",
    }
    return code, orjson.dumps([event])


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: proof of origin, replay-bounded."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
