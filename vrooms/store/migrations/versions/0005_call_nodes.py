"""Several nodes: which node holds (or last held) a call, so that a node ends only its own calls
at start-up and a surviving node can adopt a lost node's call; the secrets all nodes share.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("node", sa.String(64)))
    op.create_index("ix_calls_open", "calls", ["ended_at", "room_id"])
    op.create_table(
        "shared_files",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_files")
    op.drop_index("ix_calls_open", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node")
