"""Events: outbox, subscriptions, deliveries, fan-out cursor.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("order_key", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("schema", sa.String(32), nullable=False),
        sa.Column("event_types", sa.Text),
        sa.Column("subject_begins_with", sa.String(512)),
        sa.Column("subject_ends_with", sa.String(512)),
        sa.Column("secret", sa.String(256)),
        sa.Column("max_events_per_batch", sa.Integer, nullable=False),
        sa.Column("start_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "event_deliveries",
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("event_subscriptions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("event_seq", sa.BigInteger, primary_key=True),
        sa.Column("order_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_event_deliveries_changed", "event_deliveries", ["status", "updated_at"])
    op.create_table(
        "event_fanout",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO event_fanout (id, last_seq) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("event_fanout")
    op.drop_table("event_deliveries")
    op.drop_table("event_subscriptions")
    op.drop_table("events")
