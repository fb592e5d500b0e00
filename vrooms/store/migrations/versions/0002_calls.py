"""Room call records: calls and participations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("room_id", sa.String(32), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("started_by", sa.String(256), nullable=False),
        sa.Column("started_by_role", sa.String(16), nullable=False),
        sa.Column("ended_at", sa.BigInteger),
        sa.Column("end_reason", sa.String(32)),
        sa.Column("ended_by", sa.String(256)),
    )
    op.create_index("ix_calls_room", "calls", ["room_id", "started_at"])
    op.create_table(
        "call_participants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("raw_id", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("role_at_join", sa.String(16), nullable=False),
        sa.Column("user_agent", sa.String(256), nullable=False),
        sa.Column("joined_at", sa.BigInteger, nullable=False),
        sa.Column("left_at", sa.BigInteger),
        sa.Column("leave_reason", sa.String(32)),
        sa.Column("removed_by", sa.String(256)),
    )
    op.create_index("ix_call_participants_call", "call_participants", ["call_id"])


def downgrade() -> None:
    op.drop_table("call_participants")
    op.drop_table("calls")
