"""The web app's tables: log-in accounts (argon2id hashes, role), sessions, log-in attempts, one row per client
address that serialises its log-in attempts, and agents' saved replies (macros). Kept in their own MetaData;
migration 0005 creates them, 0008 adds web_login_clients and lets an attempt be unfinished, 0009 adds
web_macros."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ROLES = ("agent", "editor", "lead")

accounts = Table(
    "web_accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("display_name", String(120), nullable=False),
    Column("role", String(16), nullable=False),  # agent | editor | lead
    Column("initials", String(3), nullable=True),  # the reply signature of agents and leads
    Column("agent_id", Integer, nullable=True),  # their handoff roster agent (handoff_agents.id)
    Column("password_hash", Text, nullable=False),  # argon2id, in its own encoded form
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("username", name="uq_web_accounts_username"),
)

sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False),  # sha256 of the cookie's token; the token is never stored
    Column("account_id", Integer, ForeignKey("web_accounts.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("client", String(64), nullable=True),
    UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
    Index("ix_web_sessions_account", "account_id"),
    Index("ix_web_sessions_expires", "expires_at"),
)

login_attempts = Table(
    "web_login_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),  # as typed (lower-cased), whether it exists or not
    Column("client", String(64), nullable=False),  # the client's address
    Column("at", DateTime(timezone=True), nullable=False),
    Column("succeeded", Boolean, nullable=True),  # NULL: reserved, its password still being checked
    Index("ix_web_login_attempts_username", "username", "at"),
    Index("ix_web_login_attempts_client", "client", "at"),
)

# One row per client address. A log-in attempt writes its client's row first, which holds SQLite's write lock or
# PostgreSQL's row lock until the attempt is counted and reserved: attempts from one client queue there, so
# attempts still being checked are counted (bot/web/accounts.py).
login_clients = Table(
    "web_login_clients",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=False),
)

# Saved replies an agent inserts into the reply box, with {customer} and {agent} filled in (bot/web/macros.py).
# An agent's own (shared false) or the whole team's (shared true, made by a lead).
macros = Table(
    "web_macros",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("web_accounts.id", ondelete="CASCADE"), nullable=False),
    Column("shared", Boolean, nullable=False),
    Column("title", String(80), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_web_macros_owner", "owner_id"),
)
