"""The reports' slowest charts over a year without a join or a recount: each bot FAQ answer says whether a later tweet
of its conversation went to a ticket (x_outbox.came_back, set by the worker from now on, filled here for old rows),
and the closed days' resolutions and replies are counted per day and actor (handoff_report_agent_days, filled here
from the days handoff_report_events holds; bot/web/reports.py keeps both going).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
INCLUDED = ["author", "state", "conversation_id", "faq_slug"]

# What the reports counted with a semi-join until now (bot/web/reports.py, rollups=False still does).
CAME_BACK = """
UPDATE x_outbox SET came_back = :yes
WHERE kind = 'faq_answer' AND EXISTS (
    SELECT 1 FROM x_inbound_tweets t
    WHERE t.conversation_id = x_outbox.conversation_id AND t.ticket_id IS NOT NULL
      AND t.fetched_at > x_outbox.created_at)
"""
AGENT_DAYS = """
INSERT INTO handoff_report_agent_days (day, actor, resolved, replied)
SELECT {day}, actor, SUM(CASE WHEN action = 'resolved' THEN 1 ELSE 0 END),
       SUM(CASE WHEN action = 'replied' THEN 1 ELSE 0 END)
FROM handoff_report_events
WHERE action IN ('resolved', 'replied') AND at < :until
GROUP BY 1, actor
"""


def upgrade() -> None:
    op.add_column("x_outbox", sa.Column("came_back", sa.Boolean, nullable=False, server_default=sa.false()))
    op.drop_index("ix_x_outbox_answers", table_name="x_outbox")
    op.create_index("ix_x_outbox_answers", "x_outbox", ["kind", "created_at"],
                    postgresql_include=[*INCLUDED, "came_back"])  # fmt: skip
    op.create_table(
        "handoff_report_agent_days",
        sa.Column("day", sa.Date),
        sa.Column("actor", sa.String(64)),
        sa.Column("resolved", sa.Integer, nullable=False),
        sa.Column("replied", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("day", "actor", name="pk_handoff_report_agent_days"),
    )
    fill(op.get_bind())


def fill(bind: sa.Connection) -> None:
    """Old rows: every bot FAQ answer a later ticket of its conversation followed is flagged, and the days already
    copied into handoff_report_events are counted per agent (up to the same day)."""
    flag_came_back(bind)
    rolled = sa.text("SELECT rolled_until FROM handoff_report_rollup WHERE name = 'audit'").columns(rolled_until=WHEN)
    until = bind.execute(rolled).scalar()
    if until is not None:
        day = "CAST(timezone('UTC', at) AS date)" if bind.dialect.name == "postgresql" else "strftime('%Y-%m-%d', at)"
        insert = sa.text(AGENT_DAYS.format(day=day)).bindparams(sa.bindparam("until", type_=WHEN))
        bind.execute(insert, {"until": until})
    row = sa.text("INSERT INTO handoff_report_rollup (name, rolled_until) VALUES ('agent_days', :until)")
    bind.execute(row.bindparams(sa.bindparam("until", type_=WHEN)), {"until": until})


def flag_came_back(bind: sa.Connection) -> None:
    """Flag every bot FAQ answer after which a later tweet of its conversation went to a ticket."""
    bind.execute(sa.text(CAME_BACK).bindparams(sa.bindparam("yes", type_=sa.Boolean)), {"yes": True})


def downgrade() -> None:
    op.execute("DELETE FROM handoff_report_rollup WHERE name = 'agent_days'")
    op.drop_table("handoff_report_agent_days")
    op.drop_index("ix_x_outbox_answers", table_name="x_outbox")
    op.create_index("ix_x_outbox_answers", "x_outbox", ["kind", "created_at"], postgresql_include=INCLUDED)
    op.drop_column("x_outbox", "came_back")
