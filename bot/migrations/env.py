"""Alembic environment for carebot: runs migrations online against the URL that bot.db passes in."""

from __future__ import annotations

from alembic import context

from bot.db import all_metadata, make_engine

config = context.config
target_metadata = all_metadata()


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
