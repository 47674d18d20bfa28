"""Log-in attempts are reserved before the password is checked: web_login_attempts.succeeded may be NULL (still
being checked), and web_login_clients has one row per client address that attempts lock while they are counted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_login_attempts") as batch:
        batch.alter_column("succeeded", existing_type=sa.Boolean(), nullable=True)
    op.create_table(
        "web_login_clients",
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_login_clients")
    op.execute("UPDATE web_login_attempts SET succeeded = false WHERE succeeded IS NULL")
    with op.batch_alter_table("web_login_attempts") as batch:
        batch.alter_column("succeeded", existing_type=sa.Boolean(), nullable=False)
