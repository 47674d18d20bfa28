"""Customer satisfaction surveys (handoff_csat) and the desk's run-time settings (handoff_desk_settings).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_csat",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("handoff_tickets.id"), nullable=False),
        sa.Column("conversation_id", sa.String(24), nullable=False),
        sa.Column("customer_id", sa.String(24), nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("handoff_agents.id"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outbox_id", sa.Integer, nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'asked', 'answered', 'expired', 'skipped')", name="ck_handoff_csat_state"
        ),
        sa.CheckConstraint("score IS NULL OR score BETWEEN 1 AND 5", name="ck_handoff_csat_score"),
        sa.UniqueConstraint("ticket_id", name="uq_handoff_csat_ticket_id"),
        sa.UniqueConstraint("conversation_id", name="uq_handoff_csat_conversation_id"),
    )
    op.create_index("ix_handoff_csat_customer", "handoff_csat", ["customer_id", "state"])
    op.create_index("ix_handoff_csat_answered", "handoff_csat", ["answered_at"])
    op.create_table(
        "handoff_desk_settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("handoff_desk_settings")
    op.drop_index("ix_handoff_csat_answered", table_name="handoff_csat")
    op.drop_index("ix_handoff_csat_customer", table_name="handoff_csat")
    op.drop_table("handoff_csat")
