"""Every metric of a node, in one place (the one registry of metrics; see ``vrooms.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# REST workers.
HTTP_SECONDS = Histogram(
    "vrooms_http_request_seconds", "REST requests by route, method and status", ["route", "method", "status"]
)
SIGNALING_RELAYS = Counter("vrooms_signaling_joins", "Joins by where they went: this node or another", ["to"])
# The call host (set every second from what it holds).
CALLS = Gauge("vrooms_calls", "Live calls this node holds", multiprocess_mode="livesum")
PARTICIPANTS = Gauge("vrooms_participants", "Participants in those calls", ["kind"], multiprocess_mode="livesum")
MEDIA_UP = Gauge("vrooms_media_up", "1 if Janus answers", multiprocess_mode="livemax")
TELEPHONY_UP = Gauge(
    "vrooms_telephony_up", "1 if rtpengine answers (no SIP trunk: absent)", multiprocess_mode="livemax"
)
PLACEMENTS = Counter("vrooms_placements", "Room claims by this node's call host, by outcome", ["outcome"])
CALLS_ADOPTED = Counter("vrooms_calls_adopted", "Calls taken over from a lost node (failovers)")
CALLS_HANDED_OVER = Counter("vrooms_calls_handed_over", "Calls moved to another node (drain, lost lease)")
# The dispatcher.
OUTBOX_LAG = Gauge(
    "vrooms_outbox_lag_seconds", "Age of the oldest event waiting for delivery", multiprocess_mode="livemax"
)
DELIVERIES = Counter("vrooms_deliveries", "Webhook and callback deliveries, by outcome", ["outcome"])
