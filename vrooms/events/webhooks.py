"""HTTP to subscribers' endpoints: the validation handshakes and event deliveries."""

from __future__ import annotations

import time

import httpx

from vrooms.errors import bad_argument
from vrooms.events import formats
from vrooms.events.models import EventSchema
from vrooms.events.repository import StoredEvent, Subscription
from vrooms.events.service import NewSubscription

_HANDSHAKE_TIMEOUT_SECONDS = 10.0


def _refused(endpoint: str, why: str) -> Exception:
    return bad_argument(
        f"The endpoint {endpoint} did not complete the validation handshake: {why}. "
        "It must answer as an Azure Event Grid webhook does (see the README, 'Events').",
        "endpointUrl",
    )


async def handshake(new: NewSubscription, topic: str) -> None:
    """Event Grid schema: SubscriptionValidationEvent; CloudEvents: the OPTIONS abuse-protection request."""
    async with httpx.AsyncClient(timeout=_HANDSHAKE_TIMEOUT_SECONDS) as client:
        try:
            if new.schema == EventSchema.EVENT_GRID:
                code, body = formats.validation_request(topic)
                response = await client.post(
                    new.endpoint,
                    content=body,
                    headers={"content-type": "application/json", "aeg-event-type": "SubscriptionValidation"},
                )
                answer = response.json() if response.status_code == 200 else {}
                if not isinstance(answer, dict) or answer.get("validationResponse") != code:
                    raise _refused(new.endpoint, f"HTTP {response.status_code}, no matching validationResponse")
            else:
                response = await client.request(
                    "OPTIONS", new.endpoint, headers={"WebHook-Request-Origin": formats.REQUEST_ORIGIN}
                )
                allowed = response.headers.get("WebHook-Allowed-Origin", "")
                if response.status_code != 200 or allowed not in ("*", formats.REQUEST_ORIGIN):
                    raise _refused(new.endpoint, f"HTTP {response.status_code}, WebHook-Allowed-Origin '{allowed}'")
        except (httpx.HTTPError, ValueError) as exc:
            raise _refused(new.endpoint, f"{type(exc).__name__}: {exc}") from None


async def deliver(
    client: httpx.AsyncClient, subscription: Subscription, batch: list[StoredEvent], topic: str, attempt: int
) -> int | None:
    """POST one batch; the HTTP status, or None if no answer came (connection refused, timeout)."""
    body, headers = formats.notification(subscription.schema, batch, topic)
    headers["aeg-subscription-name"] = subscription.name
    headers["aeg-delivery-count"] = str(attempt - 1)  # Event Grid counts earlier attempts
    headers["aeg-metadata-version"] = "1"
    headers["aeg-data-version"] = "1.0"
    if subscription.secret:
        headers[formats.SIGNATURE_HEADER] = formats.signature(subscription.secret, int(time.time()), body)
    try:
        response = await client.post(subscription.endpoint, content=body, headers=headers)
    except httpx.HTTPError:
        return None
    return response.status_code
