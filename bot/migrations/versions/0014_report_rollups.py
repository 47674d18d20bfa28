"""The reports over a year stay fast: the FAQ entry of each bot answer on its outbox row (filled from the stored
decision for old rows), the bot answers read from one index, the tweets that went to a ticket by conversation, and
the reports' copy of the audit events they chart (answers, resolutions, replies, reopens) with when each ticket
episode began, filled here for every day before today.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ESCALATED = "ticket_id IS NOT NULL"
WHEN = sa.DateTime(timezone=True)

# Where the episode of event e began (as bot/web/reports.py computes it): for a first answer, the arrival just before
# it among arrivals and answers; for a resolution, the latest arrival before it.
_ARRIVAL = """(SELECT CASE WHEN p.action IN ('created', 'reopened') THEN p.at END FROM handoff_audit_events p
               WHERE p.ticket_id = e.ticket_id AND p.id < e.id AND p.action IN ({among}) ORDER BY p.id DESC LIMIT 1)"""
FILL = f"""
INSERT INTO handoff_report_events (event_id, ticket_id, action, at, actor, began_at)
SELECT e.id, e.ticket_id, e.action, e.at, e.actor,
       CASE e.action WHEN 'answered' THEN {_ARRIVAL.format(among="'created', 'reopened', 'answered'")}
                     WHEN 'resolved' THEN {_ARRIVAL.format(among="'created', 'reopened'")} END
FROM handoff_audit_events e
WHERE e.action IN ('answered', 'resolved', 'replied', 'reopened') AND e.at < :until
"""


def upgrade() -> None:
    op.add_column("x_outbox", sa.Column("faq_slug", sa.String(128), nullable=True))
    op.drop_index("ix_x_outbox_kind_created", table_name="x_outbox")
    op.create_index("ix_x_outbox_answers", "x_outbox", ["kind", "created_at"],
                    postgresql_include=["author", "state", "conversation_id", "faq_slug"])  # fmt: skip
    op.create_index("ix_x_inbound_escalated", "x_inbound_tweets", ["conversation_id", "fetched_at"],
                    postgresql_where=sa.text(ESCALATED), sqlite_where=sa.text(ESCALATED))  # fmt: skip
    op.create_table(
        "handoff_report_events",
        sa.Column("event_id", sa.Integer),
        sa.Column("ticket_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("began_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_handoff_report_events"),
    )
    op.create_index("ix_handoff_report_events_action", "handoff_report_events", ["action", "at"],
                    postgresql_include=["ticket_id", "actor", "began_at"])  # fmt: skip
    op.create_table(
        "handoff_report_rollup",
        sa.Column("name", sa.String(32)),
        sa.Column("rolled_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_handoff_report_rollup"),
    )
    fill(op.get_bind())


def fill(bind: sa.Connection, now: datetime | None = None) -> None:
    """Old rows: the FAQ entry of every bot answer from its tweet's stored decision, and every audit event of the
    days that ended over an hour ago copied for the reports (an empty database leaves that to the first report)."""
    slug = (
        "(SELECT t.decision -> 'decision' -> 'faq' ->> 'slug' FROM x_inbound_tweets t "
        "WHERE t.tweet_id = x_outbox.target_tweet_id)"
        if bind.dialect.name == "postgresql"
        else "(SELECT json_extract(t.decision, '$.decision.faq.slug') FROM x_inbound_tweets t "
        "WHERE t.tweet_id = x_outbox.target_tweet_id)"
    )
    bind.execute(sa.text(f"UPDATE x_outbox SET faq_slug = {slug} WHERE kind = 'faq_answer'"))
    until = datetime.combine(((now or datetime.now(UTC)) - timedelta(hours=1)).date(), time(), UTC)
    has_events = bind.execute(sa.text("SELECT 1 FROM handoff_audit_events LIMIT 1")).first() is not None
    if has_events:
        bind.execute(sa.text(FILL).bindparams(sa.bindparam("until", type_=WHEN)), {"until": until})
    insert = sa.text("INSERT INTO handoff_report_rollup (name, rolled_until) VALUES ('audit', :until)")
    bind.execute(insert.bindparams(sa.bindparam("until", type_=WHEN)), {"until": until if has_events else None})


def downgrade() -> None:
    op.drop_table("handoff_report_rollup")
    op.drop_index("ix_handoff_report_events_action", table_name="handoff_report_events")
    op.drop_table("handoff_report_events")
    op.drop_index("ix_x_inbound_escalated", table_name="x_inbound_tweets")
    op.drop_index("ix_x_outbox_answers", table_name="x_outbox")
    op.create_index("ix_x_outbox_kind_created", "x_outbox", ["kind", "created_at"])
    op.drop_column("x_outbox", "faq_slug")
