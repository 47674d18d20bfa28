"""The X channel: inbound tweets (unique tweet id), checkpoints, the outbox (unique target tweet), opt-outs,
alerts and worker heartbeats (bot/channel/models.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TWEET_ID = sa.String(24)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "x_inbound_tweets",
        sa.Column("tweet_id", TWEET_ID, primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("author_id", TWEET_ID, nullable=False),
        sa.Column("author_username", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("conversation_id", TWEET_ID, nullable=True),
        sa.Column("in_reply_to_tweet_id", TWEET_ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=True),
        sa.Column("fetched_at", TIMESTAMP, nullable=False),
        sa.Column("search_query", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("band", sa.String(16), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("triaged_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_x_inbound_state", "x_inbound_tweets", ["state", "next_attempt_at"])
    op.create_index("ix_x_inbound_conversation", "x_inbound_tweets", ["conversation_id"])
    op.create_index("ix_x_inbound_author", "x_inbound_tweets", ["author_id"])
    op.create_table(
        "x_checkpoints",
        sa.Column("name", sa.String(600), primary_key=True),
        sa.Column("since_id", TWEET_ID, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "x_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("target_tweet_id", TWEET_ID, nullable=False),
        sa.Column("conversation_id", TWEET_ID, nullable=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("author", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("posted_tweet_id", TWEET_ID, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.UniqueConstraint("target_tweet_id", name="uq_x_outbox_target"),
    )
    op.create_index("ix_x_outbox_state", "x_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_x_outbox_posted", "x_outbox", ["posted_tweet_id"])
    op.create_table(
        "x_opt_outs",
        sa.Column("author_id", TWEET_ID, primary_key=True),
        sa.Column("tweet_id", TWEET_ID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "x_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "x_worker_heartbeats",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.Column("step_seconds", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    for table in ("x_worker_heartbeats", "x_alerts", "x_opt_outs", "x_outbox", "x_checkpoints", "x_inbound_tweets"):
        op.drop_table(table)
