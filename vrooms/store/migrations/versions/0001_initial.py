"""Initial schema: rooms, rosters, identities, repeatable requests, operation log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger, nullable=False),
        sa.Column("pstn_dial_out_enabled", sa.Boolean, nullable=False),
        sa.Column("presenters", sa.Integer, nullable=False),
        sa.Column("attendees", sa.Integer, nullable=False),
        sa.Column("consumers", sa.Integer, nullable=False),
        sa.Column("collaborators", sa.Integer, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "participants",
        sa.Column(
            "room_id",
            sa.String(32),
            sa.ForeignKey("rooms.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("raw_id", sa.String(256), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_index("ix_participants_raw_id", "participants", ["raw_id"])
    op.create_table(
        "identities",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("token_generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "repeatable_requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("first_sent", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_repeatable_requests_created_at", "repeatable_requests", ["created_at"])
    op.create_table(
        "operation_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("time_generated", sa.BigInteger, nullable=False),
        sa.Column("operation_name", sa.String(32), nullable=False),
        sa.Column("operation_version", sa.String(16), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("result_type", sa.String(16), nullable=False),
        sa.Column("result_signature", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("room_id", sa.String(32)),
        sa.Column("room_lifespan", sa.BigInteger),
        sa.Column("pstn_dial_out_enabled", sa.Boolean),
        sa.Column("participants_count", sa.Integer),
        sa.Column("presenter_count", sa.Integer),
        sa.Column("attendee_count", sa.Integer),
        sa.Column("consumer_count", sa.Integer),
        sa.Column("collaborator_count", sa.Integer),
        sa.Column("added_participants_count", sa.Integer),
        sa.Column("removed_participants_count", sa.Integer),
        sa.Column("upserted_participants_count", sa.Integer),
        sa.Column("error_message", sa.Text),
    )
    op.create_index("ix_operation_log_room", "operation_log", ["room_id", "time_generated"])
    op.create_index("ix_operation_log_time", "operation_log", ["time_generated"])


def downgrade() -> None:
    for table in ("operation_log", "repeatable_requests", "identities", "participants", "rooms"):
        op.drop_table(table)
