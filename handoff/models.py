"""The handoff queue's tables: tickets, their conversation messages, the roster of agents, who is viewing which
ticket, and the audit log. Kept in their own MetaData; migration 0004 creates them, later ones change them (keep
the two in step)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Tweet ids are 64-bit integers that X sends as strings.
TWEET_ID = String(24)

# Partial indexes: at most one open ticket per conversation; the queue's order over open and over waiting tickets.
OPEN_CONDITION = "state IN ('queued', 'claimed', 'answered', 'reopened')"
WAITING_CONDITION = "state IN ('queued', 'reopened')"
EPISODE_EVENTS = "action IN ('created', 'reopened', 'answered')"  # the reports' index of ticket episodes (0012)

agents = Table(
    "handoff_agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("initials", String(3), nullable=False, unique=True),  # 2-3 capitals: the ^AB reply signature
    Column("kind", String(16), nullable=False),  # core | on_call
    Column("status", String(16), nullable=False),  # online | away | offline
    Column("capacity", Integer, nullable=False),  # open tickets the agent may hold at once
    Column("skills", JSON, nullable=False),  # list of skill names; empty: every skill
    Column("created_at", DateTime(timezone=True), nullable=False),
    # False while the agent's log-in account is disabled: offline, holding nothing, given nothing (migration 0007).
    Column("active", Boolean, nullable=False, server_default=true()),
    CheckConstraint("kind IN ('core', 'on_call')", name="kind"),
    CheckConstraint("status IN ('online', 'away', 'offline')", name="status"),
    CheckConstraint("capacity >= 0", name="capacity"),
)

tickets = Table(
    "handoff_tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", TWEET_ID, nullable=False),
    Column("customer_id", TWEET_ID, nullable=False),
    Column("customer_handle", String(64), nullable=True),
    Column("source", String(16), nullable=False),  # mention | search | dm
    Column("state", String(16), nullable=False),  # see handoff/states.py
    Column("priority", Integer, nullable=False),  # 1 = most urgent … 4 = routine
    Column("skill", String(64), nullable=False),
    Column("band", String(16), nullable=False),  # human | approve (a drafted reply waits for one click)
    Column("reasons", JSON, nullable=False),  # triage's reasons, in words
    Column("intent", String(64), nullable=True),
    Column("confidence", Float, nullable=False),
    Column("faq_entry_id", Integer, nullable=True),
    Column("draft_reply", Text, nullable=True),
    Column("dm_handover", Boolean, nullable=False),
    # The holder while claimed or answered; afterwards the agent who closed it; None in the queue.
    Column("agent_id", Integer, ForeignKey("handoff_agents.id"), nullable=True),
    Column("sla_due_at", DateTime(timezone=True), nullable=False),  # first-response deadline
    Column("waiting_since", DateTime(timezone=True), nullable=True),  # oldest customer message not yet answered
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("first_response_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),  # bumped by every update: optimistic concurrency
    # The customer's DM conversation that joined this public ticket (handoff.service: a DM joins the customer's open
    # ticket); its DMs are the ticket's messages and the agent may answer there (migration 0015).
    Column("dm_conversation_id", TWEET_ID, nullable=True),
    CheckConstraint("source IN ('mention', 'search', 'dm')", name="source"),
    CheckConstraint(
        "state IN ('queued', 'claimed', 'answered', 'resolved', 'returned_to_bot', 'reopened')", name="state"
    ),
    CheckConstraint("priority BETWEEN 1 AND 4", name="priority"),
    CheckConstraint("band IN ('human', 'approve')", name="band"),
    CheckConstraint("state NOT IN ('claimed', 'answered') OR agent_id IS NOT NULL", name="holder"),
    # "Take next" and the queue view walk these in order (and SKIP LOCKED skips along them) instead of sorting.
    Index(
        "ix_handoff_tickets_waiting",
        "priority",
        "sla_due_at",
        "created_at",
        "id",
        sqlite_where=text(WAITING_CONDITION),
        postgresql_where=text(WAITING_CONDITION),
    ),
    Index(
        "ix_handoff_tickets_open",
        "priority",
        "sla_due_at",
        "created_at",
        "id",
        sqlite_where=text(OPEN_CONDITION),
        postgresql_where=text(OPEN_CONDITION),
    ),
    Index("ix_handoff_tickets_conversation", "conversation_id", "created_at"),
    Index("ix_handoff_tickets_customer", "customer_id", "created_at"),
    Index("ix_handoff_tickets_agent", "agent_id", "state"),
    Index("ix_handoff_tickets_first_response", "band", "first_response_at"),  # the reports (migration 0012)
    Index("ix_handoff_tickets_dm_conversation", "dm_conversation_id"),  # a joined DM finds its ticket (0015)
    Index(
        "uq_handoff_tickets_open_conversation",
        "conversation_id",
        unique=True,
        sqlite_where=text(OPEN_CONDITION),
        postgresql_where=text(OPEN_CONDITION),
    ),
)

messages = Table(
    "handoff_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), nullable=False),
    Column("direction", String(8), nullable=False),  # in (the customer) | out (bot or agent)
    Column("tweet_id", TWEET_ID, nullable=True, unique=True),  # out: known once posted
    Column("author", String(64), nullable=False),  # the customer's handle, "bot", or an agent's initials
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("outbox_id", Integer, nullable=True),  # x_outbox.id of an outbound reply
    Column("delivery", String(16), nullable=False),  # pending | sent | failed
    Column("channel", String(8), nullable=True),  # dm | public; None (before migration 0015): the ticket's source
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
    CheckConstraint("delivery IN ('pending', 'sent', 'failed')", name="delivery"),
    Index("ix_handoff_messages_ticket", "ticket_id", "created_at"),
    Index("ix_handoff_messages_outbox", "outbox_id"),
)

ticket_views = Table(
    "handoff_ticket_views",
    metadata,
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), primary_key=True),
    Column("agent_id", Integer, ForeignKey("handoff_agents.id"), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

audit_events = Table(
    "handoff_audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),  # an agent's username, a lead's name, "bot" or "customer"
    Column("action", String(32), nullable=False),
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_handoff_audit_events_ticket", "ticket_id", "id"),
    Index("ix_handoff_audit_events_action", "action", "at"),
    # The reports: where each ticket episode began, read from the index alone (migration 0012).
    Index(
        "ix_handoff_audit_events_episode",
        "ticket_id",
        "id",
        postgresql_include=["action", "at"],
        postgresql_where=text(EPISODE_EVENTS),
        sqlite_where=text(EPISODE_EVENTS),
    ),
)

# Customer satisfaction: one question per conversation, sent as a DM when its ticket is resolved (migration 0010).
# pending (chosen, DM not yet queued) → asked (DM queued) → answered | expired; skipped: not asked (sample, opt-out).
csat_surveys = Table(
    "handoff_csat",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), nullable=False, unique=True),
    Column("conversation_id", TWEET_ID, nullable=False, unique=True),  # once per conversation, ever
    Column("customer_id", TWEET_ID, nullable=False),
    Column("agent_id", Integer, ForeignKey("handoff_agents.id"), nullable=True),  # who resolved the ticket
    Column("state", String(16), nullable=False),
    Column("outbox_id", Integer, nullable=True),  # the DM that asks
    Column("score", Integer, nullable=True),  # 1 (very unhappy) … 5 (very happy)
    Column("comment", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("asked_at", DateTime(timezone=True), nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("state IN ('pending', 'asked', 'answered', 'expired', 'skipped')", name="state"),
    CheckConstraint("score IS NULL OR score BETWEEN 1 AND 5", name="score"),
    Index("ix_handoff_csat_customer", "customer_id", "state"),
    Index("ix_handoff_csat_answered", "answered_at"),
)

# The desk's own settings that a lead changes at run time (CSAT on/off and its sample rate, …): name → JSON value.
desk_settings = Table(
    "handoff_desk_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# Incidents: during an outage the lead handles one incident, not many tickets (migration 0011).
incidents = Table(
    "handoff_incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(120), nullable=False),  # "Fibre outage, Leeds"
    Column("state", String(16), nullable=False),  # open | resolved
    Column("status_note", Text, nullable=False),  # what is known now, kept up to date by the lead
    Column("keywords", JSON, nullable=False),  # words that offer similar new tweets for linking
    Column("reply_template", Text, nullable=True),  # the update every linked customer gets
    Column("closing_template", Text, nullable=True),  # the public reply under each thread when it is resolved
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("state IN ('open', 'resolved')", name="state"),
    Index("ix_handoff_incidents_state", "state", "created_at"),
)

incident_tickets = Table(
    "handoff_incident_tickets",
    metadata,
    Column("incident_id", Integer, ForeignKey("handoff_incidents.id"), primary_key=True),
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), primary_key=True),
    Column("linked_by", String(64), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Index("uq_handoff_incident_tickets_ticket", "ticket_id", unique=True),  # a ticket is in one incident at most
)

# The reports' copy of the audit events their charts read (answers, resolutions, replies, reopens), each with when
# its ticket episode began, for every day before `handoff_report_rollup.rolled_until`; later events are read live
# from the audit log (migration 0014, bot/web/reports.py). A row never changes: its figures depend only on
# earlier events of its ticket.
REPORT_ACTIONS = ("answered", "resolved", "replied", "reopened")
report_events = Table(
    "handoff_report_events",
    metadata,
    Column("event_id", Integer, primary_key=True),  # handoff_audit_events.id
    Column("ticket_id", Integer, nullable=True),
    Column("action", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    # answered: the episode's arrival when this is its first answer, else NULL; resolved: the episode's arrival.
    Column("began_at", DateTime(timezone=True), nullable=True),
    Index("ix_handoff_report_events_action", "action", "at", postgresql_include=["ticket_id", "actor", "began_at"]),
)

# Per UTC day and actor, the resolutions and replies of handoff_report_events (the reports' work per agent), for
# every day before the rollup row "agent_days" (migration 0017). Like the events they count, a row never changes.
report_agent_days = Table(
    "handoff_report_agent_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("actor", String(64), primary_key=True),
    Column("resolved", Integer, nullable=False),
    Column("replied", Integer, nullable=False),
)

# One row per copy: "audit", audit events before `rolled_until` are in handoff_report_events; "agent_days", the
# days before it are in handoff_report_agent_days (None: none are yet).
report_rollup = Table(
    "handoff_report_rollup",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("rolled_until", DateTime(timezone=True), nullable=True),
)

# What agents' and customers' actions say about the bot's decisions (handoff/labels.py, migration 0016): one row per
# action, for the decided tweet, the FAQ entry the bot chose or suggested, its score and the kind of message.
# `correct`: whether the action says that entry was the right answer. The text is the customer's, stripped of
# personal data, mentions and links; who gave the label is an agent's username or "customer".
LABELS = ("approved", "edited", "rejected", "suggestion_sent", "own_reply", "didnt_help", "thanks")
labels = Table(
    "handoff_labels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("label", String(24), nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("tweet_id", TWEET_ID, nullable=True),
    Column("ticket_id", Integer, ForeignKey("handoff_tickets.id"), nullable=True),
    Column("faq_entry_id", Integer, nullable=True),
    Column("score", Float, nullable=True),
    Column("kind", String(64), nullable=True),  # the kind of message (the intent); None when unclear
    Column("text", Text, nullable=False),
    Column("edit_distance", Integer, nullable=True),  # edited: characters changed in the draft
    CheckConstraint(f"label IN ({', '.join(repr(name) for name in LABELS)})", name="label"),
    Index("ix_handoff_labels_entry", "faq_entry_id", "at"),
    Index("ix_handoff_labels_kind", "kind", "at"),
    Index("ix_handoff_labels_ticket", "ticket_id"),
)

# Shadow mode: a kind of message or an FAQ entry whose automatic answers are drafts for agents instead (shadow), or
# posted (automatic). No row: as the policy says. Every switch is an audit event (automation_switched).
AUTOMATION_SCOPES = ("kind", "entry")
AUTOMATION_MODES = ("shadow", "automatic")
automation = Table(
    "handoff_automation",
    metadata,
    Column("scope", String(8), primary_key=True),  # kind | entry
    Column("key", String(64), primary_key=True),  # the intent, or the FAQ entry's id
    Column("mode", String(16), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    CheckConstraint("scope IN ('kind', 'entry')", name="scope"),
    CheckConstraint("mode IN ('shadow', 'automatic')", name="mode"),
)
