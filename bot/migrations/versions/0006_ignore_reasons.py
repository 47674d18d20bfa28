"""Every ignored tweet names its reason (x_inbound_tweets.ignore_reason), so the lead view can count them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("x_inbound_tweets") as batch:
        batch.add_column(sa.Column("ignore_reason", sa.String(24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("x_inbound_tweets") as batch:
        batch.drop_column("ignore_reason")
