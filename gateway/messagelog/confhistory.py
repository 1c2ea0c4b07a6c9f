"""The history of applied global configuration versions, in the message log database.

An audit bundle must show which configuration (members, nodes, CAs, TSAs) each logged
entry was judged against, years later. The state directory holds only the version
applied last, so the node records every version it applies in the
``configuration_version`` table (gateway.messagelog.schema.ConfigurationVersion), through
the log's writer thread (``MessageLog.write``) and *before* installing it: an entry
logged under a version never exists without that version's row.

These are plain ``sqlite3`` functions: :func:`record_version` runs inside the writer's
transaction, :func:`read_versions` on the exporter's read-only connection.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.conf.tufclient import SIGNED_FILES

__all__ = ["StoredVersion", "read_versions", "record_version"]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One applied version: its serial, when it was applied, and its signed files."""

    id: int
    serial: int
    applied_at: str
    files: tuple[tuple[str, bytes], ...]
    """Named as ``gateway.conf.tufclient.SIGNED_FILES``."""


def record_version(
    conn: sqlite3.Connection,
    files: Sequence[tuple[str, bytes]],
    serial: int,
    applied_at: str,
) -> bool:
    """Store a version unless it is the one recorded last; True if a row was added.

    Deduplicated on the document's digest against the latest row only: a restart or a
    refresh that re-applies the version in force adds nothing, while every change of
    document is a new row (fresher timestamp metadata alone is not a new version).
    """
    by_name = dict(files)
    if tuple(by_name) != SIGNED_FILES:
        raise ValueError(f"a configuration version is exactly {', '.join(SIGNED_FILES)}")
    digest = hashlib.sha256(by_name["globalconf.json"]).hexdigest()
    last = conn.execute(
        "SELECT document_sha256 FROM configuration_version ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    conn.execute(
        "INSERT INTO configuration_version (serial, applied_at, document_sha256, root,"
        " timestamp, snapshot, targets, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (serial, applied_at, digest, *(by_name[n] for n in SIGNED_FILES)),
    )
    return True


def read_versions(conn: sqlite3.Connection) -> list[StoredVersion]:
    """Every recorded version in the order applied; none for a log from before history."""
    try:
        rows = conn.execute(
            "SELECT id, serial, applied_at, CAST(root AS BLOB), CAST(timestamp AS BLOB),"
            " CAST(snapshot AS BLOB), CAST(targets AS BLOB), CAST(document AS BLOB)"
            " FROM configuration_version ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a log file from before history
        return []
    return [
        StoredVersion(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            tuple((name, bytes(data)) for name, data in zip(SIGNED_FILES, r[3:], strict=True)),
        )
        for r in rows
    ]
