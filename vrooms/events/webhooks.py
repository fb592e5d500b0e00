"""HTTP to subscribers' endpoints: the validation handshakes and event deliveries.

aiohttp, because delivery throughput is bounded by the client's per-request cost: with
httpx the dispatcher spent ~88% of its CPU inside the client (measured with py-spy,
BENCHMARKS.md "Events").
"""

from __future__ import annotations

import json
import time

import aiohttp

from vrooms.auth.callback_tokens import CallbackSigner
from vrooms.egress import EgressPolicy, EgressRefused
from vrooms.errors import ApiError, bad_argument
from vrooms.events import formats
from vrooms.events.models import EventSchema, NewSubscription, StoredEvent, Subscription

_MAX_ANSWER_BYTES = 64 * 1024
_HANDSHAKE_TIMEOUT_SECONDS = 10.0


def _refused(endpoint: str, why: str) -> ApiError:
    return bad_argument(
        f"The endpoint {endpoint} did not complete the validation handshake: {why}. "
        "It must answer as an Azure Event Grid webhook does (see the README, 'Events').",
        "endpointUrl",
    )


async def handshake(new: NewSubscription, topic: str, policy: EgressPolicy) -> None:
    """Event Grid schema: SubscriptionValidationEvent; CloudEvents: the OPTIONS abuse-protection request.
    The endpoint must be one the egress policy allows (``VROOMS_EGRESS_WEBHOOKS``), without redirects."""
    try:
        await policy.check(new.endpoint)
    except EgressRefused as exc:
        raise bad_argument(f"The endpoint is not allowed: {exc}", "endpointUrl") from None
    timeout = aiohttp.ClientTimeout(total=_HANDSHAKE_TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=policy.connector()) as session:
            if new.schema == EventSchema.EVENT_GRID:
                code, body = formats.validation_request(topic)
                headers = {"content-type": "application/json", "aeg-event-type": "SubscriptionValidation"}
                async with session.post(new.endpoint, data=body, headers=headers, allow_redirects=False) as response:
                    raw = await response.content.read(_MAX_ANSWER_BYTES) if response.status == 200 else b"{}"
                    answer = json.loads(raw or b"{}")
                    if not isinstance(answer, dict) or answer.get("validationResponse") != code:
                        raise _refused(new.endpoint, f"HTTP {response.status}, no matching validationResponse")
            else:
                headers = {"WebHook-Request-Origin": formats.REQUEST_ORIGIN}
                async with session.options(new.endpoint, headers=headers, allow_redirects=False) as response:
                    allowed = response.headers.get("WebHook-Allowed-Origin", "")
                    if response.status != 200 or allowed not in ("*", formats.REQUEST_ORIGIN):
                        raise _refused(new.endpoint, f"HTTP {response.status}, WebHook-Allowed-Origin '{allowed}'")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise _refused(new.endpoint, f"{type(exc).__name__}: {exc}") from None


async def deliver(
    session: aiohttp.ClientSession,
    policy: EgressPolicy,
    subscription: Subscription,
    batch: list[StoredEvent],
    topic: str,
    attempt: int,
    signer: CallbackSigner | None = None,
) -> int | None:
    """POST one batch; the HTTP status, or None if no answer came (connection refused, timeout, or an
    address the egress policy refuses: ``session`` connects only where ``policy`` allows, and
    redirects are not followed, as Event Grid follows none)."""
    if not policy.allows_literal(subscription.endpoint):
        return None
    body, headers = formats.notification(subscription.schema, batch, topic)
    if subscription.is_callback and signer is not None:
        headers["authorization"] = f"Bearer {signer.token()}"
    headers["aeg-subscription-name"] = subscription.name
    headers["aeg-delivery-count"] = str(attempt - 1)  # Event Grid counts earlier attempts
    headers["aeg-metadata-version"] = "1"
    headers["aeg-data-version"] = "1.0"
    if subscription.secret:
        headers[formats.SIGNATURE_HEADER] = formats.signature(subscription.secret, int(time.time()), body)
    try:
        async with session.post(subscription.endpoint, data=body, headers=headers, allow_redirects=False) as response:
            # Only the status matters; an endpoint's body, however large, is not read in full.
            await response.content.read(_MAX_ANSWER_BYTES)
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None
