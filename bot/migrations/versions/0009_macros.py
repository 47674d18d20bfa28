"""Agents' saved replies (macros): web_macros, an agent's own or shared with the team by a lead.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_macros",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("web_accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("title", sa.String(80), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_macros_owner", "web_macros", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_web_macros_owner", table_name="web_macros")
    op.drop_table("web_macros")
