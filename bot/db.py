"""The database: engines for SQLite (default) and PostgreSQL, and Alembic migrations run from code.

Each component keeps its tables in its own SQLAlchemy MetaData; the migrations in bot/migrations
cover all of them. A SQLite file holds personal data: it is created 0600 in a directory created 0700, and an
existing one that others may read is tightened to 0600 (SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A timestamp read back from the database, in UTC: carebot stores UTC, and SQLite returns it without a zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class DatabaseError(Exception):
    """The database cannot be reached or migrated."""


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite files get their directory, WAL mode and enforced foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def _private_file(path: Path) -> None:
    """Create the (empty: SQLite takes it as a new database) file for its owner only, or tighten an existing one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        status = path.stat()
        if status.st_uid == os.geteuid() and status.st_mode & 0o077:
            path.chmod(0o600)


def all_metadata() -> list[MetaData]:
    """Every component's MetaData: together they are the schema that the migrations build."""
    from bot.channel.models import metadata as channel
    from bot.web.models import metadata as web
    from handoff.models import metadata as handoff
    from knowledge_base.models import metadata as knowledge_base

    return [knowledge_base, channel, handoff, web]


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this version of carebot ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    try:
        command.upgrade(_alembic_config(url), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the database: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()
