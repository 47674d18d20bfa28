"""The triage policy's versions: each apply (a refit on the desk's labels) or rollback adds one, with who, when and
why; the newest is the live policy. A desk without any reads training_data/policy.yml, which becomes version 1
on the first apply.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("based_on", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
