"""Where the central's registry lives: a SQLite file in its directory, or PostgreSQL.

A central directory always holds the TUF keys and repository; its registry (members,
nodes, groups, requests, settings, API keys, audit trail, the serial) is either
``central.sqlite`` beside them or a PostgreSQL database whose URL ``gateway central init
--database-url`` recorded in ``database.url`` (0600: a URL may carry a password), so every
command that opens the directory finds the same database. ``--database-url`` on ``serve``
overrides the recorded URL (a moved server, a password from a secret store).

The schema is the same on both backends and comes from the Alembic revisions in
``migrations/`` (their own version table, ``central_alembic_version``, so a central may
share a database with a node's log without either seeing the other's revision;
docs/adr/0047-central-registry-on-postgresql.md). On PostgreSQL the central refuses a
database that is not at :data:`HEAD`; a SQLite directory made before migrations keeps
working and is adopted by ``gateway central db upgrade``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from gateway.central.errors import CentralCode, CentralError

__all__ = [
    "DB_NAME",
    "HEAD",
    "URL_FILE",
    "VERSION_TABLE",
    "check_revision",
    "database_location",
    "is_postgres",
    "open_engine",
    "record_url",
    "upgrade",
]

DB_NAME = "central.sqlite"
URL_FILE = "database.url"
HEAD = "0001"
"""The revision this code reads and writes; a PostgreSQL registry at another is refused."""
VERSION_TABLE = "central_alembic_version"

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def is_postgres(location: Path | str) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql:", "postgres:"))


def database_location(directory: Path, database_url: str | None = None) -> Path | str:
    """The registry of ``directory``: ``database_url`` if given, else the URL recorded at
    init, else the SQLite file."""
    if database_url:
        return _checked_url(database_url)
    recorded = directory / URL_FILE
    if recorded.is_file():
        return _checked_url(recorded.read_text("utf-8").strip())
    return directory / DB_NAME


def _checked_url(url: str) -> Path | str:
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if not is_postgres(url):
        raise CentralError(
            CentralCode.INVALID, "a database URL is postgresql://... (or sqlite:///PATH)"
        )
    return url


def record_url(directory: Path, location: Path | str) -> None:
    """Remember a PostgreSQL registry in the directory (0600); a SQLite one needs nothing."""
    if not is_postgres(location):
        return
    fd = os.open(directory / URL_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{location}\n")


def sqlalchemy_url(location: Path | str) -> str:
    """SQLAlchemy's URL: PostgreSQL through psycopg 3, or the SQLite file."""
    text_ = str(location)
    for scheme in ("postgresql://", "postgres://"):
        if text_.startswith(scheme):
            return "postgresql+psycopg://" + text_[len(scheme) :]
    return f"sqlite:///{Path(text_).resolve()}"


def open_engine(location: Path | str) -> Engine:
    """An engine for the registry. SQLite's connections may cross threads (the web app's
    worker threads share one ``Central``); PostgreSQL's are not pooled: each session
    opens its own connection and closes it at its end (a few milliseconds, at the
    admin API's rate of calls), so a restarted server costs nothing but the calls made
    while it was down, and no connection outlives the ``Central`` that opened it."""
    if is_postgres(location):
        return create_engine(sqlalchemy_url(location), poolclass=NullPool)
    return create_engine(sqlalchemy_url(location), connect_args={"check_same_thread": False})


def _reason(exc: OperationalError | ProgrammingError) -> str:
    return str(exc.orig).strip().splitlines()[-1] if exc.orig else str(exc)


def current_revision(engine: Engine) -> str | None:
    """The registry's Alembic revision, or None if it has none (empty, or made before)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def check_revision(engine: Engine) -> None:
    """Refuse a PostgreSQL registry that ``gateway central db upgrade`` did not bring to
    :data:`HEAD`: the code and the tables must agree before anything is written."""
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        raise CentralError(
            CentralCode.UNAVAILABLE, f"the registry database is unreachable: {_reason(exc)}"
        ) from None
    if revision != HEAD:
        raise CentralError(
            CentralCode.UNAVAILABLE,
            f"the registry database is at revision {revision or 'none'}, this central needs "
            f"{HEAD}: run `gateway central db upgrade`",
        )


def upgrade(location: Path | str, revision: str = "head") -> str:
    """Create or upgrade the registry's schema at ``location``; the revision afterwards."""
    from alembic import command
    from alembic.config import Config

    engine = open_engine(location)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two upgrades at once (two operators, two hosts) wait for each other.
                connection.execute(text("SELECT pg_advisory_xact_lock(4707)"))
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(engine) or ""
    except (OperationalError, ProgrammingError) as exc:
        raise CentralError(
            CentralCode.UNAVAILABLE, f"cannot upgrade the registry's schema: {_reason(exc)}"
        ) from None
    finally:
        engine.dispose()
