"""Incidents: handoff_incidents and the tickets linked to each (handoff_incident_tickets).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status_note", sa.Text, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("reply_template", sa.Text, nullable=True),
        sa.Column("closing_template", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('open', 'resolved')", name="ck_handoff_incidents_state"),
    )
    op.create_index("ix_handoff_incidents_state", "handoff_incidents", ["state", "created_at"])
    op.create_table(
        "handoff_incident_tickets",
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("handoff_incidents.id"), primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("handoff_tickets.id"), primary_key=True),
        sa.Column("linked_by", sa.String(64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_handoff_incident_tickets_ticket", "handoff_incident_tickets", ["ticket_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_handoff_incident_tickets_ticket", table_name="handoff_incident_tickets")
    op.drop_table("handoff_incident_tickets")
    op.drop_index("ix_handoff_incidents_state", table_name="handoff_incidents")
    op.drop_table("handoff_incidents")
