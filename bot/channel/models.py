"""The X channel's tables: inbound tweets (each stored once), read checkpoints, the outbox of replies (one row per
target tweet), opt-outs and operational alerts. Kept in their own MetaData; migration 0003 creates them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()

# Tweet ids are 64-bit integers that X sends as strings; they are kept as strings, and ordered by (length, text).
TWEET_ID = String(24)

inbound_tweets = Table(
    "x_inbound_tweets",
    metadata,
    Column("tweet_id", TWEET_ID, primary_key=True),
    Column("source", String(16), nullable=False),  # mention | search | backfill | dm
    Column("author_id", TWEET_ID, nullable=False),
    Column("author_username", String(64), nullable=True),
    Column("text", Text, nullable=False),
    Column("conversation_id", TWEET_ID, nullable=True),
    Column("in_reply_to_tweet_id", TWEET_ID, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=True),  # on X
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("search_query", String(512), nullable=True),
    # new → triaged (decision stored) | waiting (the NLU is down; retried) ; done when nothing more happens here
    Column("state", String(16), nullable=False, default="new"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("band", String(16), nullable=True),
    Column("decision", JSON, nullable=True),
    Column("ticket_id", Integer, nullable=True),
    Column("triaged_at", DateTime(timezone=True), nullable=True),
    # why nobody replies and no ticket was opened: own_tweet | spam | opt_out | duplicate | closing_thanks
    Column("ignore_reason", String(24), nullable=True),
    Index("ix_x_inbound_state", "state", "next_attempt_at"),
    Index("ix_x_inbound_conversation", "conversation_id"),
    Index("ix_x_inbound_author", "author_id"),
    Index("ix_x_inbound_fetched", "fetched_at", "band", "ignore_reason"),  # the reports' volume (migration 0012)
    # The reports: tweets that went to a ticket, by conversation (after a bot answer: it did not help; 0014).
    Index("ix_x_inbound_escalated", "conversation_id", "fetched_at", postgresql_where=text("ticket_id IS NOT NULL"),
          sqlite_where=text("ticket_id IS NOT NULL")),  # fmt: skip
)

checkpoints = Table(
    "x_checkpoints",
    metadata,
    Column("name", String(600), primary_key=True),  # "mentions", "search:<query>", "dm"
    Column("since_id", TWEET_ID, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "x_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_tweet_id", TWEET_ID, nullable=False),  # the tweet we reply to: one reply per target, ever
    Column("conversation_id", TWEET_ID, nullable=True),
    Column("kind", String(24), nullable=False),  # faq_answer | acknowledgement | dm_handover | agent_reply | …
    Column("author", String(16), nullable=False),  # "bot" or an agent's initials
    Column("text", Text, nullable=False),
    # pending → sending → sent | failed | unknown (posted or not: look on X before any re-send)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("posted_tweet_id", TWEET_ID, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("ticket_id", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("faq_slug", String(128), nullable=True),  # a bot FAQ answer's entry, for the reports (migration 0014)
    # A bot FAQ answer after which a later tweet of its conversation went to a ticket (the customer came back to a
    # person): set by the worker when that tweet goes to a ticket, for the reports' "didn't help" (migration 0017).
    Column("came_back", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("target_tweet_id", name="uq_x_outbox_target"),
    Index("ix_x_outbox_state", "state", "next_attempt_at"),
    Index("ix_x_outbox_posted", "posted_tweet_id"),
    Index("ix_x_outbox_sent", "sent_at"),  # what was posted in each of X's windows (migration 0013)
    # The reports' bot answers, read from the index alone (migrations 0014 and 0017; 0012 had it without the columns).
    Index("ix_x_outbox_answers", "kind", "created_at",
          postgresql_include=["author", "state", "conversation_id", "faq_slug", "came_back"]),  # fmt: skip
)

opt_outs = Table(
    "x_opt_outs",
    metadata,
    Column("author_id", TWEET_ID, primary_key=True),
    Column("tweet_id", TWEET_ID, nullable=False),  # the tweet that asked us to stop
    Column("created_at", DateTime(timezone=True), nullable=False),
)

alerts = Table(
    "x_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # mention_gap | rate_limited | x_unavailable | nlu_down | …
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

worker_heartbeats = Table(
    "x_worker_heartbeats",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("step_seconds", Float, nullable=True),
)

# The triage policy's versions (migration 0018): each apply or rollback adds one, the newest is live; with none the
# live desk reads training_data/policy.yml (bot/policy_versions.py).
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("policy", Text, nullable=False),  # the policy file's text (bot/decision/policy.render_policy)
    Column("action", String(16), nullable=False),  # shipped | apply | rollback
    Column("based_on", Integer, nullable=True),  # rollback: the version restored
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
)
