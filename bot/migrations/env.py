"""Alembic environment for carebot: runs migrations online against the URL that bot.db passes in."""

from __future__ import annotations

from alembic import context

from bot.db import make_engine
from knowledge_base.models import metadata as knowledge_base_metadata

config = context.config
target_metadata: list = [knowledge_base_metadata]  # each component adds its MetaData here as it gains tables


def run_migrations() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
