"""The PostgreSQL backend's foreign configuration history: the same functions as
``gateway.messagelog.sqlite_foreign`` on a psycopg connection, inside a transaction the
caller owns (docs/adr/0035-postgresql-backend.md)."""

from __future__ import annotations

from typing import Any

import psycopg

from gateway.messagelog.records import ForeignVersion, StoredForeignVersion
from gateway.messagelog.sqlite_foreign import document_digest, stored

__all__ = ["read_foreign_versions", "record_foreign_version"]

Conn = psycopg.Connection[tuple[Any, ...]]


def record_foreign_version(conn: Conn, version: ForeignVersion, applied_at: str) -> bool:
    """Store ``version`` unless it is the one recorded last for its instance; True if
    added. Two processes of one node applying the same version add it once."""
    digest, files = document_digest(version)
    conn.execute("LOCK TABLE foreign_configuration_version IN SHARE ROW EXCLUSIVE MODE")
    last = conn.execute(
        "SELECT document_sha256 FROM foreign_configuration_version WHERE instance = %s"
        " ORDER BY id DESC LIMIT 1",
        (version.instance,),
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    conn.execute(
        "INSERT INTO foreign_configuration_version (instance, serial, applied_at, expires,"
        " root_sha256, document_sha256, root, timestamp, snapshot, targets, document)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            version.instance,
            version.serial,
            applied_at,
            version.expires,
            version.root_sha256,
            digest,
            *files,
        ),
    )
    return True


def read_foreign_versions(conn: Conn) -> list[StoredForeignVersion]:
    """Every recorded foreign version in the order applied."""
    rows = conn.execute(
        "SELECT id, instance, serial, applied_at, expires, root_sha256, document_sha256,"
        " root, timestamp, snapshot, targets, document"
        " FROM foreign_configuration_version ORDER BY id"
    ).fetchall()
    return [stored(row) for row in rows]
