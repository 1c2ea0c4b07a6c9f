"""Connections to a PostgreSQL log and the check that its schema is the current one.

The log's tables in PostgreSQL are created and upgraded by ``gateway db upgrade``
(Alembic, ``gateway.messagelog.migrations``) from the declarations in
``gateway.messagelog.schema``, never implicitly by a node at start-up: a node cluster's
processes start in any order, and an operator upgrades the schema once, on purpose. A
node whose database is not at the revision it was built for refuses to start, saying
what to run (docs/deployment.md).
"""

from __future__ import annotations

from typing import Any

import psycopg

from gateway.messagelog.location import URL_SCHEMES, is_postgres_url
from gateway.messagelog.migrations import HEAD
from gateway.messagelog.records import LogStoreError, MessageLogError

__all__ = ["URL_SCHEMES", "check_schema", "connect", "is_postgres_url", "redacted"]

_CONNECT_TIMEOUT_S = 10


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    host = info.get("host", "")
    return f"postgresql://{info.get('user', '')}@{host}/{info.get('dbname', '')}"


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection outside autocommit: every statement runs in a transaction the
    caller commits or rolls back."""
    try:
        return psycopg.connect(url, autocommit=False, connect_timeout=_CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise LogStoreError(f"cannot connect to {redacted(url)}: {exc}") from None


def check_schema(conn: psycopg.Connection[tuple[Any, ...]], url: str) -> None:
    """Refuse a database whose schema is missing or at another revision."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    finally:
        conn.rollback()
    if row is None or row[0] != HEAD:
        found = "no message log schema" if row is None else f"schema revision {row[0]}"
        raise MessageLogError(
            f"{redacted(url)} holds {found}, this node needs revision {HEAD}:"
            " run `gateway db upgrade` first"
        )
