"""The migrations create exactly the tables of every component's models (knowledge_base/models.py and the
others in bot.db.all_metadata), on SQLite and PostgreSQL, and the knowledge base's (0002) can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from bot.db import MIGRATIONS_DIR, all_metadata, current_revision, make_engine, upgrade
from knowledge_base.models import kb_state

KB_TABLES = {"kb_entries", "kb_entry_versions", "kb_vectors", "kb_state", "kb_changes"}


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            assert KB_TABLES <= set(inspect(connection).get_table_names())
            differences = compare_metadata(MigrationContext.configure(connection), all_metadata())
            assert differences == []
            assert connection.execute(select(kb_state.c.id, kb_state.c.version)).all() == [(1, 0)]
    finally:
        engine.dispose()


def test_downgrade_removes_the_tables_and_upgrade_restores_them(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.downgrade(config, "0001")
    assert current_revision(database_url) == "0001"
    engine = make_engine(database_url)
    try:
        assert not KB_TABLES & set(inspect(engine).get_table_names())
        upgrade(database_url)
        assert KB_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
