"""Live captions: a call's captions state (on, language), so that it survives its call host: a
node that adopts the call, or the next call in the room after a call host crashed, goes on
captioning as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("captions", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("captions")
