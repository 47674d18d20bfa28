"""The knowledge base's tables, in their own SQLAlchemy MetaData (migrated by bot/migrations, revision 0002).

Entries hold the editable working copy; entry versions are immutable snapshots, one per publish;
vectors are the embeddings of the live (published) texts, their ids are the faiss ids; the KB state
holds a counter that every publish, unpublish, rollback or re-index bumps, and the changes table says
which entries changed at which KB version, so a search index can catch up incrementally.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.engine import Engine

STATUSES = ("draft", "published", "archived")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

entries = Table(
    "kb_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("question", Text, nullable=False),
    Column("paraphrases", JSON, nullable=False),
    Column("answer", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("language", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # The number of the latest version (0: never published) and the version that is live (None: none is).
    Column("version", Integer, nullable=False),
    Column("published_version", Integer, nullable=True),
    Column("author", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
)

entry_versions = Table(
    "kb_entry_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entry_id", Integer, ForeignKey("kb_entries.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("slug", String(100), nullable=False),
    Column("question", Text, nullable=False),
    Column("paraphrases", JSON, nullable=False),
    Column("answer", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("language", String(16), nullable=False),
    Column("author", String(100), nullable=False),
    Column("note", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("entry_id", "version", name="uq_kb_entry_versions_entry_version"),
)

# Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL): a faiss id names one text forever.
vectors = Table(
    "kb_vectors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, ForeignKey("kb_entries.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("position", Integer, nullable=False),  # 0: the question, 1…: the paraphrases
    Column("text", Text, nullable=False),
    Column("model", String(300), nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32, L2-normalised, native byte order
    sqlite_autoincrement=True,
)

kb_state = Table(
    "kb_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # one row, id 1
    Column("version", Integer, nullable=False),
)

changes = Table(
    "kb_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kb_version", Integer, nullable=False, index=True),
    Column("entry_id", Integer, nullable=True),  # None: every entry (a re-index)
    Column("action", String(16), nullable=False),
    Column("author", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def create_schema(engine: Engine) -> None:
    """Create the tables directly, without Alembic: for scratch databases (tests, evaluations, benchmarks)."""
    metadata.create_all(engine)
    with engine.begin() as connection:
        if connection.execute(select(kb_state.c.id)).first() is None:
            connection.execute(insert(kb_state).values(id=1, version=0))
