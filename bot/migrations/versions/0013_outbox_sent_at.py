"""An index on x_outbox.sent_at: the sender counts what it posted in each of X's windows on every step.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_x_outbox_sent", "x_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_x_outbox_sent", table_name="x_outbox")
