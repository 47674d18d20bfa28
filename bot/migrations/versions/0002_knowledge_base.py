"""The knowledge base: FAQ entries, their immutable versions, the vectors of live texts, the KB version counter
and its changelog (knowledge_base/models.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("paraphrases", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_kb_entries_status"),
        sa.PrimaryKeyConstraint("id", name="pk_kb_entries"),
        sa.UniqueConstraint("slug", name="uq_kb_entries_slug"),
    )
    op.create_table(
        "kb_entry_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("paraphrases", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["kb_entries.id"], name="fk_kb_entry_versions_entry_id_kb_entries"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_kb_entry_versions"),
        sa.UniqueConstraint("entry_id", "version", name="uq_kb_entry_versions_entry_version"),
    )
    op.create_table(
        "kb_vectors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["kb_entries.id"], name="fk_kb_vectors_entry_id_kb_entries"),
        sa.PrimaryKeyConstraint("id", name="pk_kb_vectors"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_vectors_entry_id", "kb_vectors", ["entry_id"])
    op.create_table(
        "kb_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_state"),
    )
    op.create_table(
        "kb_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kb_version", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_changes"),
    )
    op.create_index("ix_kb_changes_kb_version", "kb_changes", ["kb_version"])
    op.execute("INSERT INTO kb_state (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_index("ix_kb_changes_kb_version", table_name="kb_changes")
    op.drop_table("kb_changes")
    op.drop_table("kb_state")
    op.drop_index("ix_kb_vectors_entry_id", table_name="kb_vectors")
    op.drop_table("kb_vectors")
    op.drop_table("kb_entry_versions")
    op.drop_table("kb_entries")
