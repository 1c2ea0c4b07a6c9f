"""The log's schema migrations (Alembic), for PostgreSQL and SQLite alike.

``gateway db upgrade`` runs :func:`upgrade`: it creates the log's tables in an empty
database, or brings an older one to :data:`HEAD`, and records the revision in
``alembic_version``. The revisions in ``versions/`` are written from
``gateway.messagelog.schema`` (the single declaration of the tables) and frozen: a later
change of the schema is a new revision, never an edit of an applied one
(docs/adr/0035-postgresql-backend.md).

A SQLite log keeps creating its tables at start-up as before; ``upgrade`` on a SQLite
file made by an earlier node adopts it (its tables already exist) and from then on
applies later revisions to it too.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEAD", "sqlalchemy_url", "upgrade"]

HEAD = "0006"
"""The revision this code reads and writes; a PostgreSQL log at another one is refused."""

_HERE = Path(__file__).resolve().parent


def sqlalchemy_url(location: Path | str) -> str:
    """SQLAlchemy's URL for a log: a ``postgresql://`` URL through psycopg 3, or a file."""
    text = str(location)
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):
            return "postgresql+psycopg://" + text[len(scheme) :]
    if text.startswith("sqlite:///"):
        return text
    return f"sqlite:///{Path(text).resolve()}"


def upgrade(location: Path | str, revision: str = "head") -> str:
    """Create or upgrade the log's schema at ``location`` to ``revision``; the revision
    it is at afterwards."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from gateway.messagelog.records import LogStoreError

    if not isinstance(location, str) or not location.startswith(("postgresql:", "postgres:")):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sqlalchemy_url(location))
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(_HERE))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        # Unreachable, refused, no such database: the server's one line, not a trace.
        reason = str(exc.orig).strip().splitlines()[-1] if exc.orig else str(exc)
        raise LogStoreError(f"cannot upgrade the log's schema: {reason}") from None
    finally:
        engine.dispose()
    return current or ""
