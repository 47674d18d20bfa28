"""Migrations on a real SQLite file and, in CI, on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.db import DatabaseError, current_revision, head_revision, make_engine, upgrade


def _migrate_and_check(url: str) -> None:
    upgrade(url)
    assert current_revision(url) == head_revision()
    upgrade(url)  # idempotent
    engine = make_engine(url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_file_is_created_and_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'carebot.db'}"
    _migrate_and_check(url)
    assert (tmp_path / "nested" / "carebot.db").is_file()


@pytest.mark.postgres
def test_postgres_is_migrated(postgres_url: str) -> None:
    _migrate_and_check(postgres_url)


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="not a database URL"):
        make_engine("this is not a url")


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="cannot"):
        current_revision("postgresql://nobody:x@127.0.0.1:1/none")
