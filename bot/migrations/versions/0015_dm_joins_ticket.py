"""A customer's DM joins their open public ticket: the ticket keeps the DM conversation that joined it, and each
message says whether it was public or a DM.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handoff_tickets") as batch:
        batch.add_column(sa.Column("dm_conversation_id", sa.String(24), nullable=True))
    op.create_index("ix_handoff_tickets_dm_conversation", "handoff_tickets", ["dm_conversation_id"])
    with op.batch_alter_table("handoff_messages") as batch:
        batch.add_column(sa.Column("channel", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("handoff_messages") as batch:
        batch.drop_column("channel")
    op.drop_index("ix_handoff_tickets_dm_conversation", table_name="handoff_tickets")
    with op.batch_alter_table("handoff_tickets") as batch:
        batch.drop_column("dm_conversation_id")
