"""Indexes for the reports (/reports): the stored tweets by when they were fetched with their band and ignore
reason (read from the index alone), the bot's answers by kind and time, tickets' first responses by band, and each
ticket's arrivals and answers in the audit log (where a ticket episode began, read from the index alone).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


EPISODE_EVENTS = "action IN ('created', 'reopened', 'answered')"


def upgrade() -> None:
    op.create_index(
        "ix_handoff_audit_events_episode", "handoff_audit_events", ["ticket_id", "id"],
        postgresql_include=["action", "at"], postgresql_where=sa.text(EPISODE_EVENTS),
        sqlite_where=sa.text(EPISODE_EVENTS),
    )  # fmt: skip
    op.create_index("ix_x_inbound_fetched", "x_inbound_tweets", ["fetched_at", "band", "ignore_reason"])
    op.create_index("ix_x_outbox_kind_created", "x_outbox", ["kind", "created_at"])
    op.create_index("ix_handoff_tickets_first_response", "handoff_tickets", ["band", "first_response_at"])


def downgrade() -> None:
    op.drop_index("ix_handoff_audit_events_episode", table_name="handoff_audit_events")
    op.drop_index("ix_handoff_tickets_first_response", table_name="handoff_tickets")
    op.drop_index("ix_x_outbox_kind_created", table_name="x_outbox")
    op.drop_index("ix_x_inbound_fetched", table_name="x_inbound_tweets")
