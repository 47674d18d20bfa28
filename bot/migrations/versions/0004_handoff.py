"""The handoff queue: agents, tickets (at most one open per conversation), conversation messages, who is viewing
which ticket, and the audit log (handoff/models.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TWEET_ID = sa.String(24)
TIMESTAMP = sa.DateTime(timezone=True)
OPEN_CONDITION = "state IN ('queued', 'claimed', 'answered', 'reopened')"
WAITING_CONDITION = "state IN ('queued', 'reopened')"
QUEUE_ORDER = ["priority", "sla_due_at", "created_at", "id"]


def upgrade() -> None:
    op.create_table(
        "handoff_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("initials", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('core', 'on_call')", name="ck_handoff_agents_kind"),
        sa.CheckConstraint("status IN ('online', 'away', 'offline')", name="ck_handoff_agents_status"),
        sa.CheckConstraint("capacity >= 0", name="ck_handoff_agents_capacity"),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_agents"),
        sa.UniqueConstraint("username", name="uq_handoff_agents_username"),
        sa.UniqueConstraint("initials", name="uq_handoff_agents_initials"),
    )
    op.create_table(
        "handoff_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", TWEET_ID, nullable=False),
        sa.Column("customer_id", TWEET_ID, nullable=False),
        sa.Column("customer_handle", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(64), nullable=False),
        sa.Column("band", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("faq_entry_id", sa.Integer(), nullable=True),
        sa.Column("draft_reply", sa.Text(), nullable=True),
        sa.Column("dm_handover", sa.Boolean(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("sla_due_at", TIMESTAMP, nullable=False),
        sa.Column("waiting_since", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=True),
        sa.Column("first_response_at", TIMESTAMP, nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("source IN ('mention', 'search', 'dm')", name="ck_handoff_tickets_source"),
        sa.CheckConstraint(
            "state IN ('queued', 'claimed', 'answered', 'resolved', 'returned_to_bot', 'reopened')",
            name="ck_handoff_tickets_state",
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="ck_handoff_tickets_priority"),
        sa.CheckConstraint("band IN ('human', 'approve')", name="ck_handoff_tickets_band"),
        sa.CheckConstraint(
            "state NOT IN ('claimed', 'answered') OR agent_id IS NOT NULL", name="ck_handoff_tickets_holder"
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["handoff_agents.id"], name="fk_handoff_tickets_agent_id_handoff_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_tickets"),
    )
    for name, condition in (
        ("ix_handoff_tickets_waiting", WAITING_CONDITION),
        ("ix_handoff_tickets_open", OPEN_CONDITION),
    ):
        op.create_index(
            name,
            "handoff_tickets",
            QUEUE_ORDER,
            sqlite_where=sa.text(condition),
            postgresql_where=sa.text(condition),
        )
    op.create_index("ix_handoff_tickets_conversation", "handoff_tickets", ["conversation_id", "created_at"])
    op.create_index("ix_handoff_tickets_customer", "handoff_tickets", ["customer_id", "created_at"])
    op.create_index("ix_handoff_tickets_agent", "handoff_tickets", ["agent_id", "state"])
    op.create_index(
        "uq_handoff_tickets_open_conversation",
        "handoff_tickets",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text(OPEN_CONDITION),
        postgresql_where=sa.text(OPEN_CONDITION),
    )
    op.create_table(
        "handoff_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("tweet_id", TWEET_ID, nullable=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_handoff_messages_direction"),
        sa.CheckConstraint("delivery IN ('pending', 'sent', 'failed')", name="ck_handoff_messages_delivery"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["handoff_tickets.id"], name="fk_handoff_messages_ticket_id_handoff_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_messages"),
        sa.UniqueConstraint("tweet_id", name="uq_handoff_messages_tweet_id"),
    )
    op.create_index("ix_handoff_messages_ticket", "handoff_messages", ["ticket_id", "created_at"])
    op.create_index("ix_handoff_messages_outbox", "handoff_messages", ["outbox_id"])
    op.create_table(
        "handoff_ticket_views",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["handoff_tickets.id"], name="fk_handoff_ticket_views_ticket_id_handoff_tickets"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["handoff_agents.id"], name="fk_handoff_ticket_views_agent_id_handoff_agents"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "agent_id", name="pk_handoff_ticket_views"),
    )
    op.create_table(
        "handoff_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["handoff_tickets.id"], name="fk_handoff_audit_events_ticket_id_handoff_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_audit_events"),
    )
    op.create_index("ix_handoff_audit_events_ticket", "handoff_audit_events", ["ticket_id", "id"])
    op.create_index("ix_handoff_audit_events_action", "handoff_audit_events", ["action", "at"])


def downgrade() -> None:
    tables = ("handoff_audit_events", "handoff_ticket_views", "handoff_messages", "handoff_tickets", "handoff_agents")
    for table in tables:
        op.drop_table(table)
