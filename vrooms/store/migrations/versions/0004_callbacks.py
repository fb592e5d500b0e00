"""Call Automation callbacks: a subscription per call connection, purged after it ends.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_subscriptions", sa.Column("expires_at", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("event_subscriptions") as batch:
        batch.drop_column("expires_at")
