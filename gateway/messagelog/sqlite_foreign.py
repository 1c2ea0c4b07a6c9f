"""The SQLite backend's foreign configuration history: the federated instances'
configuration versions the node applied (``foreign_configuration_version``).

Written on the writer's connection inside the transaction of a ``MessageLog.write``
unit, read on a read-only connection (``gateway.messagelog.foreign`` picks the backend).
The PostgreSQL twin is ``gateway.messagelog.postgres_foreign``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.conf.tufclient import SIGNED_FILES
from gateway.messagelog.records import ForeignVersion, StoredForeignVersion

__all__ = ["document_digest", "read_foreign_versions", "record_foreign_version"]

_COLUMNS = (
    "id, instance, serial, applied_at, expires, root_sha256, document_sha256,"
    " CAST(root AS BLOB), CAST(timestamp AS BLOB), CAST(snapshot AS BLOB),"
    " CAST(targets AS BLOB), CAST(document AS BLOB)"
)


def document_digest(version: ForeignVersion) -> tuple[str, tuple[bytes, ...]]:
    """The document's SHA-256 and the signed files in ``SIGNED_FILES`` order (ValueError
    unless the version is exactly those files)."""
    by_name = dict(version.files)
    if tuple(by_name) != SIGNED_FILES:
        raise ValueError(f"a configuration version is exactly {', '.join(SIGNED_FILES)}")
    files = tuple(by_name[n] for n in SIGNED_FILES)
    return hashlib.sha256(by_name["globalconf.json"]).hexdigest(), files


def record_foreign_version(
    conn: sqlite3.Connection, version: ForeignVersion, applied_at: str
) -> bool:
    """Store ``version`` unless it is the one recorded last for its instance; True if a
    row was added (the rule of the own history, per instance)."""
    digest, files = document_digest(version)
    last = conn.execute(
        "SELECT document_sha256 FROM foreign_configuration_version WHERE instance = ?"
        " ORDER BY id DESC LIMIT 1",
        (version.instance,),
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    conn.execute(
        "INSERT INTO foreign_configuration_version (instance, serial, applied_at, expires,"
        " root_sha256, document_sha256, root, timestamp, snapshot, targets, document)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


def read_foreign_versions(conn: sqlite3.Connection) -> list[StoredForeignVersion]:
    """Every recorded foreign version in the order applied; none for a log from before
    the table existed."""
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM foreign_configuration_version ORDER BY id"  # noqa: S608
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a log file from before it
        return []
    return [stored(row) for row in rows]


def stored(row: Sequence[Any]) -> StoredForeignVersion:
    """A row of ``_COLUMNS`` (either backend) as its record."""
    files = tuple((name, bytes(data)) for name, data in zip(SIGNED_FILES, row[7:12], strict=True))
    version = ForeignVersion(str(row[1]), int(row[2]), str(row[4]), str(row[5]), files)
    return StoredForeignVersion(int(row[0]), str(row[3]), str(row[6]), version)
