"""Labels from what agents and customers do with the bot's decisions, and shadow mode per kind and per FAQ entry.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

LABELS = ("approved", "edited", "rejected", "suggestion_sent", "own_reply", "didnt_help", "thanks")


def upgrade() -> None:
    op.create_table(
        "handoff_labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("label", sa.String(24), nullable=False),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("tweet_id", sa.String(24), nullable=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("handoff_tickets.id"), nullable=True),
        sa.Column("faq_entry_id", sa.Integer, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("kind", sa.String(64), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("edit_distance", sa.Integer, nullable=True),
        sa.CheckConstraint(
            f"label IN ({', '.join(repr(name) for name in LABELS)})", name="ck_handoff_labels_label"
        ),
    )
    op.create_index("ix_handoff_labels_entry", "handoff_labels", ["faq_entry_id", "at"])
    op.create_index("ix_handoff_labels_kind", "handoff_labels", ["kind", "at"])
    op.create_index("ix_handoff_labels_ticket", "handoff_labels", ["ticket_id"])
    op.create_table(
        "handoff_automation",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.CheckConstraint("scope IN ('kind', 'entry')", name="ck_handoff_automation_scope"),
        sa.CheckConstraint("mode IN ('shadow', 'automatic')", name="ck_handoff_automation_mode"),
    )


def downgrade() -> None:
    op.drop_table("handoff_automation")
    op.drop_index("ix_handoff_labels_ticket", table_name="handoff_labels")
    op.drop_index("ix_handoff_labels_kind", table_name="handoff_labels")
    op.drop_index("ix_handoff_labels_entry", table_name="handoff_labels")
    op.drop_table("handoff_labels")
