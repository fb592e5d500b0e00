"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/`` create them.

Times are stored as integer microseconds since the Unix epoch (UTC): exact, portable
between SQLite and PostgreSQL, and cheap to compare and sort.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

metadata = MetaData()


class ClientText(TypeDecorator[str]):
    """Free text that came from outside (display names, user agents, error messages quoting
    a request, webhook answers): stored on every backend, whatever it holds.

    PostgreSQL refuses NUL characters and over-long values for ``VARCHAR(n)``, where
    SQLite takes both: one such value would fail its whole write (or a whole batch of
    operation-log records, for ever). NUL becomes U+FFFD and the value is cut to ``length``.
    """

    impl = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String(self.length) if self.length else Text())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        value = value.replace("\x00", "\ufffd")
        return value[: self.length] if self.length else value


# ``seq`` is the stable list order: keyset pagination on it stays correct while rooms are
# created and deleted during a listing (no duplicates, no skipped rooms).
rooms = Table(
    "rooms",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("pstn_dial_out_enabled", Boolean, nullable=False, default=False),
    # Per-role roster counts, kept in the same transaction as the roster itself; they
    # feed the roster-size limit and the operation log without counting rows.
    Column("presenters", Integer, nullable=False, default=0),
    Column("attendees", Integer, nullable=False, default=0),
    Column("consumers", Integer, nullable=False, default=0),
    Column("collaborators", Integer, nullable=False, default=0),
    sqlite_autoincrement=True,
)

participants = Table(
    "participants",
    metadata,
    Column("room_id", String(32), ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True),
    Column("raw_id", String(256), primary_key=True),
    Column("role", String(16), nullable=False),
)
Index("ix_participants_raw_id", participants.c.raw_id)

identities = Table(
    "identities",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    # Bumped by "revoke tokens": a token carries the generation it was issued under,
    # so every earlier token stops working at once.
    Column("token_generation", Integer, nullable=False, default=0),
)

repeatable_requests = Table(
    "repeatable_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("first_sent", BigInteger, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
Index("ix_repeatable_requests_created_at", repeatable_requests.c.created_at)

# Columns follow ACS's ``ACSRoomsIncomingOperations`` log table.
operation_log = Table(
    "operation_log",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("time_generated", BigInteger, nullable=False),
    Column("operation_name", String(32), nullable=False),
    Column("operation_version", ClientText(16), nullable=False),
    Column("correlation_id", ClientText(64), nullable=False),
    Column("level", String(16), nullable=False),
    Column("result_type", String(16), nullable=False),
    Column("result_signature", Integer, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("room_id", ClientText(32)),
    Column("room_lifespan", BigInteger),
    Column("pstn_dial_out_enabled", Boolean),
    Column("participants_count", Integer),
    Column("presenter_count", Integer),
    Column("attendee_count", Integer),
    Column("consumer_count", Integer),
    Column("collaborator_count", Integer),
    Column("added_participants_count", Integer),
    Column("removed_participants_count", Integer),
    Column("upserted_participants_count", Integer),
    Column("error_message", ClientText()),
)
Index("ix_operation_log_room", operation_log.c.room_id, operation_log.c.time_generated)
Index("ix_operation_log_time", operation_log.c.time_generated)

# Room calls: one row per call, one per participation (a user who leaves and rejoins
# has two). Events and logs are derived from these (issue: room calls, records).
# No foreign key to rooms: a call record outlives the deletion of its room.
calls = Table(
    "calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("room_id", String(32), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("started_by", String(256), nullable=False),
    Column("started_by_role", String(16), nullable=False),
    Column("ended_at", BigInteger),
    Column("end_reason", String(32)),
    Column("ended_by", String(256)),
    # The node that holds the live call (its settings.node_name); a surviving node adopts the
    # open call of a lost one, so the call keeps its id (issue: several nodes).
    Column("node", String(64)),
    # Its captions while on: the spoken language (None: off), kept for whoever takes the call
    # over, or the room's next call after its call host crashed (issue: live captions).
    Column("captions", String(64)),
)
Index("ix_calls_room", calls.c.room_id, calls.c.started_at)
Index("ix_calls_open", calls.c.ended_at, calls.c.room_id)

call_participants = Table(
    "call_participants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("call_id", String(36), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
    Column("raw_id", String(256), nullable=False),
    Column("display_name", ClientText(256), nullable=False),
    Column("role_at_join", String(16), nullable=False),
    Column("user_agent", ClientText(256), nullable=False),
    Column("joined_at", BigInteger, nullable=False),
    Column("left_at", BigInteger),
    Column("leave_reason", String(32)),
    Column("removed_by", String(256)),
)
Index("ix_call_participants_call", call_participants.c.call_id)

# Several nodes: the secrets every node must hold the same (access keys, token and callback
# signing keys, the TLS CA), as files of the data dir. The first node to start writes them;
# the others take them from here (cluster/shared_files.py), so nobody copies keys by hand.
shared_files = Table(
    "shared_files",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("content", LargeBinary, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Events: an outbox written in the same transaction as the state change it reports,
# subscriptions, and one delivery row per (subscription, event) after fan-out.
events = Table(
    "events",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("subject", String(512), nullable=False),
    # Deliveries with the same key reach each subscriber in order (a call, a room).
    Column("order_key", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Column("time", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

event_subscriptions = Table(
    "event_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("endpoint", Text, nullable=False),
    Column("schema", String(32), nullable=False),
    Column("event_types", Text),  # JSON list, or NULL for every type
    Column("subject_begins_with", String(512)),
    Column("subject_ends_with", String(512)),
    Column("secret", String(256)),
    Column("max_events_per_batch", Integer, nullable=False),
    # Only events after this one are delivered (no backlog from before the subscription).
    Column("start_seq", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set for a call connection's callbacks when the connection ends; purged after it.
    Column("expires_at", BigInteger),
)

event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column(
        "subscription_id",
        String(36),
        ForeignKey("event_subscriptions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("event_seq", BigInteger, primary_key=True),
    Column("order_key", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, deadlettered
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", ClientText()),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_event_deliveries_changed", event_deliveries.c.status, event_deliveries.c.updated_at)

# One row: the last event the dispatcher has fanned out to subscriptions.
event_fanout = Table(
    "event_fanout",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)
